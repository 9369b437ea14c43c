"""The FastAPI application of `tunelab api`: OpenAI-compatible routes over one `ChatModel`.

Routes: `GET /health` (no key needed, for load balancers), `GET /v1/models`, `GET /v1/models/{id}`,
`POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/score/evaluation` (reward models).
Every generation passes the `Limiter` first (its slots default to the engine's batch width, API_MAX_BATCH),
one request may not ask for more than the per-request caps, a client that leaves has its work cancelled
(`serve/scheduling.py`); every error leaves as an OpenAI error body. `/health` reports the requests
running and queued, and for a batching engine the sequences it decodes and holds waiting.
The `model` field of a request is accepted whatever it says (clients hard-code names); responses
carry the served name (API_MODEL_NAME, default the model folder's name).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, FastAPI, Header, Request
from starlette.concurrency import run_in_threadpool

from tunelab import __version__
from tunelab.infer.chat_model import ChatModel
from tunelab.infer.engine import request_group
from tunelab.serve.auth import check_api_key
from tunelab.serve.chat_routes import ChatJob
from tunelab.serve.completion_routes import CompletionJob
from tunelab.serve.errors import ApiError, install_handlers
from tunelab.serve.limiter import Limiter
from tunelab.serve.protocol import ChatCompletionRequest, CompletionRequest, ScoreRequest, now
from tunelab.serve.scheduling import refuse_over_caps, stream_answer, whole_answer
from tunelab.serve.security import install_security
from tunelab.serve.settings import ServerSettings


def create_app(chat_model: ChatModel, settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    model_name = settings.model_name or chat_model.name
    chat_model.engine.set_max_batch(settings.max_batch)
    limiter = Limiter(settings.max_concurrent or settings.max_batch, settings.max_queue)
    created = now()
    app = FastAPI(title="tunelab API", version=__version__, docs_url=None, redoc_url=None)
    app.state.limiter = limiter
    app.state.chat_model = chat_model
    install_handlers(app)
    install_security(app, settings)  # Host, CORS, API key and body size, before any body is read

    async def authorized(authorization: str | None = Header(default=None)) -> None:
        check_api_key(authorization, settings.api_key)

    def model_card() -> dict[str, Any]:
        return {"id": model_name, "object": "model", "created": created, "owned_by": "tunelab"}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        state: dict[str, Any] = {"status": "ok", "model": model_name, "running": limiter.running, "queued": limiter.waiting}
        engine = chat_model.engine.scheduler_state()
        if engine is not None:
            state["engine"] = engine
        return state

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}", dependencies=[Depends(authorized)])
    async def get_model(model_id: str) -> dict[str, Any]:
        if model_id != model_name:
            raise ApiError(404, f"model '{model_id}' is not served here; this server serves '{model_name}'.",
                           type_="not_found_error", param="model", code="model_not_found")
        return model_card()

    async def answer(job: ChatJob | CompletionJob, http_request: Request) -> Any:
        refuse_over_caps(job, settings)
        request_group.set(job)  # the request's streams share the engine's batch fairly with other requests'
        if job.request.stream:
            return await stream_answer(job, limiter)
        respond = job.response if isinstance(job, ChatJob) else (lambda result: result)
        return await whole_answer(job, limiter, http_request, respond)

    @app.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat_completions(request: ChatCompletionRequest, http_request: Request) -> Any:
        return await answer(ChatJob(chat_model, request, model_name), http_request)

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def completions(request: CompletionRequest, http_request: Request) -> Any:
        return await answer(CompletionJob(chat_model, request, model_name), http_request)

    @app.post("/v1/score/evaluation", dependencies=[Depends(authorized)])
    async def score(request: ScoreRequest) -> dict[str, Any]:
        scorer = chat_model.scorer
        if scorer is None:
            raise ApiError(400, "this server does not serve a reward model; start `tunelab api` with stage: rm.",
                           code="not_a_reward_model")
        slot = await limiter.acquire()
        try:
            scores = await run_in_threadpool(scorer.score, request.messages, request.max_length)
        finally:
            slot.release()
        return {"id": f"scoreeval-{uuid.uuid4().hex}", "object": "score.evaluation", "model": model_name, "scores": scores}

    return app
