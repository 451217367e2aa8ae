"""The HTTP API and the page, over a SearchService (FastAPI; run with uvicorn by `ranklist serve`).

    POST /search?k=10        multipart images (field "file", one or several) -> top-k {id, label, score}
    POST /embed              multipart images -> evaluation embeddings
    GET  /items?offset&limit the indexed items;  GET /items/{id};  GET /items/{id}/image (thumbnail)
    GET  /items/{id}/neighbours?k=10
    GET  /browse?k=8         labelled index: queries with neighbours marked correct, worst first
    GET  /healthz, GET /info, GET / (the page)

Bad input is a 4xx JSON error {"detail": "..."}; the work of a request (decoding, the model, the
index) runs in a worker thread, so one request never blocks the event loop for the others.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request,
# imported inside create_app so that this module imports without the extra) as objects.
from importlib import resources
from typing import Any

from ranklist.serving.extra import require
from ranklist.serving.service import SearchService
from ranklist.serving.uploads import InputError, decode_image

FILE_FIELDS = ("file", "files")


def _page() -> str:
    return resources.files("ranklist.serving").joinpath("page.html").read_text(encoding="utf-8")


def create_app(service: SearchService) -> Any:
    """The FastAPI app serving `service`."""
    require("fastapi", "ranklist serve")
    require("python_multipart", "ranklist serve (uploads)")
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    app = FastAPI(title="ranklist search", docs_url="/docs", redoc_url=None)
    limits = service.limits

    @app.exception_handler(InputError)
    async def input_error(_: Request, error: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.middleware("http")
    async def body_limit(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limits.max_request_bytes):
            return JSONResponse({"detail": f"request body of {length} bytes is over the limit of "
                                           f"{limits.max_request_bytes} bytes"}, status_code=413)
        return await call_next(request)

    async def read_images(request: Request) -> list[Any]:
        kind = request.headers.get("content-type", "")
        if not kind.startswith("multipart/form-data"):
            raise InputError(415, f"send the images as multipart/form-data (field 'file'), not {kind or 'no content type'!r}")
        try:
            form = await request.form(max_files=limits.max_files, max_fields=limits.max_files + 8)
        except Exception as error:  # the multipart parser's own limits and framing errors
            raise InputError(400, f"bad multipart body: {getattr(error, 'detail', error)}") from None
        uploads = [value for key in FILE_FIELDS for value in form.getlist(key) if not isinstance(value, str)]
        if not uploads:
            raise InputError(400, "no image in the request: send one or more files in the field 'file'")
        blobs = [(await upload.read(limits.max_upload_bytes + 1), upload) for upload in uploads]
        return await run_in_threadpool(lambda: [
            decode_image(data, upload.filename or f"file {i + 1}", upload.content_type, limits)
            for i, (data, upload) in enumerate(blobs)])

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return _page()

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "items": len(service.index)}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        index = service.index
        return {"items": len(index), "kind": index.meta.get("kind"), "dim": index.dim, "runtime": service.embedder.runtime,
                "labelled": index.labels is not None, "classes": len(service.class_names or []),
                "max_k": min(limits.max_k, len(index)), "max_files": limits.max_files,
                "max_upload_bytes": limits.max_upload_bytes,
                "model": None if index.model is None else index.model.to_dict()}

    @app.post("/search")
    async def search(request: Request, k: int = 10) -> dict[str, Any]:
        service.check_k(k)
        images = await read_images(request)
        results = await run_in_threadpool(service.search_images, images, k)
        return {"k": k, "results": [{"neighbours": hits} for hits in results]}

    @app.post("/embed")
    async def embed(request: Request) -> dict[str, Any]:
        images = await read_images(request)
        embeddings = await run_in_threadpool(service.embed, images)
        return {"dim": int(embeddings.shape[1]), "embeddings": embeddings.round(7).tolist()}

    @app.get("/items")
    async def items(offset: int = 0, limit: int = 48) -> dict[str, Any]:
        return {"total": len(service.index), "offset": offset, "items": service.page(offset, limit)}

    @app.get("/items/{item_id:path}/image")
    async def item_image(item_id: str) -> Response:
        data = await run_in_threadpool(service.thumbnail, service.row(item_id))
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get("/items/{item_id:path}/neighbours")
    async def item_neighbours(item_id: str, k: int = 10) -> dict[str, Any]:
        row = service.row(item_id)
        hits = await run_in_threadpool(service.item_neighbours, row, k)
        return {"item": service.item(row), "k": k, "neighbours": hits}

    @app.get("/items/{item_id:path}")
    async def item(item_id: str) -> dict[str, Any]:
        return service.item(service.row(item_id))

    @app.get("/browse")
    async def browse(k: int = 8, limit: int = 50) -> dict[str, Any]:
        if not 1 <= limit <= limits.browse_queries:
            raise InputError(422, f"limit must be between 1 and {limits.browse_queries}, got {limit}")
        ranked = await run_in_threadpool(service.browse, k)
        return {"k": k, "queries": ranked[:limit], "total": len(ranked)}

    return app


def run_server(service: SearchService, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted (uvicorn, one process; the model runs in its worker threads)."""
    uvicorn = require("uvicorn", "ranklist serve")
    uvicorn.run(create_app(service), host=host, port=port, log_level="info")
