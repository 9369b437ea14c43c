"""The OpenAI-compatible HTTP server (`tunelab api`) and the browser chat page (`tunelab webchat`).

`app.create_app(chat_model, settings)` builds the FastAPI application; `protocol` holds the
request/response shapes, `messages` converts OpenAI messages to tunelab's, `auth`, `limiter` and
`errors` are the cross-cutting concerns, `settings` reads the API_* environment variables.
"""
