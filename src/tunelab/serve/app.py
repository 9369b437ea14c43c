"""The FastAPI application of `tunelab api`: OpenAI-compatible routes over one `ChatModel`.

Routes: `GET /health` (no key needed, for load balancers), `GET /v1/models`, `GET /v1/models/{id}`,
`POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/score/evaluation` (reward models).
Every generation passes the `Limiter` first; every error leaves as an OpenAI error body.
The `model` field of a request is accepted whatever it says (clients hard-code names); responses
carry the served name (API_MODEL_NAME, default the model folder's name).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, FastAPI, Header
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from tunelab import __version__
from tunelab.infer.chat_model import ChatModel
from tunelab.serve.auth import check_api_key
from tunelab.serve.chat_routes import ChatJob
from tunelab.serve.completion_routes import CompletionJob
from tunelab.serve.errors import ApiError, install_handlers
from tunelab.serve.limiter import Limiter, Slot
from tunelab.serve.protocol import ChatCompletionRequest, CompletionRequest, ScoreRequest, now
from tunelab.serve.settings import ServerSettings

SSE_PING_SECONDS = 15  # keeps proxies from closing a stream while a long prompt is processed


def create_app(chat_model: ChatModel, settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    model_name = settings.model_name or chat_model.name
    limiter = Limiter(settings.max_concurrent, settings.max_queue)
    created = now()
    app = FastAPI(title="tunelab API", version=__version__, docs_url=None, redoc_url=None)
    app.state.limiter = limiter
    app.state.chat_model = chat_model
    install_handlers(app)

    async def authorized(authorization: str | None = Header(default=None)) -> None:
        check_api_key(authorization, settings.api_key)

    def model_card() -> dict[str, Any]:
        return {"id": model_name, "object": "model", "created": created, "owned_by": "tunelab"}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "running": limiter.running, "queued": limiter.waiting}

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}", dependencies=[Depends(authorized)])
    async def get_model(model_id: str) -> dict[str, Any]:
        if model_id != model_name:
            raise ApiError(404, f"model '{model_id}' is not served here; this server serves '{model_name}'.",
                           type_="not_found_error", param="model", code="model_not_found")
        return model_card()

    async def stream_or_json(job: ChatJob | CompletionJob, slot: Slot) -> Any:
        if not job.request.stream:
            try:
                result = await run_in_threadpool(job.run_all)
            finally:
                slot.release()
            return JSONResponse(job.response(result) if isinstance(job, ChatJob) else result)
        try:  # the first stream starts before the 200, so a bad prompt is still a 400
            first = await run_in_threadpool(job.start, 0)
        except BaseException:
            slot.release()
            raise
        return EventSourceResponse(job.events(first, slot), ping=SSE_PING_SECONDS, background=BackgroundTask(slot.release))

    @app.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat_completions(request: ChatCompletionRequest) -> Any:
        job = ChatJob(chat_model, request, model_name)
        return await stream_or_json(job, await limiter.acquire())

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def completions(request: CompletionRequest) -> Any:
        job = CompletionJob(chat_model, request, model_name)
        return await stream_or_json(job, await limiter.acquire())

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
