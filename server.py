"""thinkgate's FastAPI app: ``create_app(settings)``.

The request path (DESIGN.md): validate -> decide (router/ policy over a frozen
snapshot) -> admit (budget hook) -> upstream (one pooled client, failover
before the first byte) -> settle -> respond with the ``thinkgate`` object.
The completions hot path is raw ASGI (``thinkgate/gateway/hotpath.py``),
dispatched before FastAPI's middleware stack; the other endpoints are FastAPI
routes (``thinkgate/gateway/routes.py``). Completions go upstream through the
lean pooled HTTP/1.1 client (``thinkgate/gateway/http1.py``); health probes and
tokenizer look-ups, off the hot path, use one aiohttp session.
Everything stateful is built in the lifespan, nothing at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from fastapi import FastAPI

from router.pool import BackendPool, Replica
from router.seam import make_policy
from thinkgate.config import Settings
from thinkgate.gateway.hooks import Admission
from thinkgate.gateway.hotpath import HOT_PATHS, serve_completion
from thinkgate.gateway.http1 import HTTP1Pool
from thinkgate.gateway.metrics import Metrics
from thinkgate.gateway.pipeline import Outcome
from thinkgate.gateway.proxy import Upstream, make_pool

__all__ = ["create_app", "Gateway", "GatewayApp"]

_GC_GEN0 = 10_000  # first-generation threshold while serving (CPython's default: 700)


class Gateway:
    """The per-app state: backend pool, policy, metrics, admission, upstream client."""

    def __init__(self, settings: Settings, admission: Admission | None = None) -> None:
        self.settings = settings
        g, r = settings.gateway, settings.router
        self.pool = BackendPool(
            (Replica(name=b.name, url=b.url, model=b.model, price_input_per_m=b.price_input_per_m,
                     price_output_per_m=b.price_output_per_m, enforces_thinking_budget=b.enforces_thinking_budget,
                     guidance=b.guidance, guidance_mode=b.guidance_mode, reasoning_parser=b.reasoning_parser,
                     api_key=b.api_key)
             for b in settings.backends),
            aliases=g.aliases,
        )
        self.policy = make_policy(r.strategy, default_model=r.default_model,
                                  default_thinking_budget=r.default_thinking_budget,
                                  default_max_tokens=r.default_max_tokens, guidance_mode=r.guidance_mode,
                                  **r.options)
        self.metrics = Metrics()
        if admission is None:
            from thinkgate.gateway.admission import LedgerAdmission

            admission = LedgerAdmission(settings)
        self.admission: Admission = admission
        self.predictor: Any = None  # predictors.Predictor, loaded in start() when configured
        self.needs_estimates = bool(getattr(self.policy, "needs_estimates", False))
        self.needs_features = bool(getattr(self.policy, "needs_features", False))
        self.session: aiohttp.ClientSession | None = None  # health probes and /tokenize only
        self.client: HTTP1Pool | None = None  # completions
        self.upstream: Upstream | None = None
        self.feedback: Any = None  # thinkgate.gateway.feedback.Feedback, set by install_feedback
        self._health_task: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Open the upstream client and the admission store; run a first health check."""
        g = self.settings.gateway
        if self.settings.predictor_path:
            from predictors import load_predictor

            # Loaded here, never at import; a missing/incompatible artifact fails start-up with its name.
            self.predictor = await asyncio.to_thread(load_predictor, self.settings.predictor_path)
            warm = getattr(self.predictor, "warm_up", None)
            if warm is not None:  # first-call costs (ONNX session, caches) paid before serving
                await asyncio.to_thread(warm)
        elif self.needs_estimates:
            raise RuntimeError(f"router.strategy {self.policy.name!r} needs a predictor: set predictor_path")
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        self.client = make_pool(g.connect_timeout_s, g.read_timeout_s, g.max_connections)
        self.upstream = Upstream(self.client, self.pool)
        await self.admission.start()
        await self.check_health()
        self._health_task = asyncio.create_task(self._health_loop())

    async def stop(self) -> None:
        if self._health_task:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        await self.admission.stop()
        if self.client:
            await self.client.close()
        if self.session:
            await self.session.close()

    async def settle(self, tenant: str, out: Outcome) -> None:
        """Settle a request's spend; shielded from cancellation and awaited at shutdown."""
        if out.reservation_id is None:
            return  # nothing reserved (anonymous, refused before admission, already settled)
        task = asyncio.ensure_future(self.admission.settle(tenant, out))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        await asyncio.shield(task)

    async def check_health(self) -> None:
        """Probe every replica's ``/health`` once, concurrently."""
        session = self.session
        assert session is not None
        timeout = aiohttp.ClientTimeout(total=self.settings.gateway.health_timeout_s)

        async def probe(rep: Replica) -> None:
            try:
                async with session.get(rep.url + "/health", timeout=timeout) as resp:
                    ok = resp.status == 200
                    err = None if ok else f"HTTP {resp.status}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                ok, err = False, f"{type(exc).__name__}: {exc}"
            self.pool.mark(rep, ok, err)
            self.metrics.healthy.labels(rep.name).set(1 if ok else 0)
            if ok and rep.reasoning_parser and rep.model not in self.pool.think_end_ids:
                await self._learn_end_id(rep)

        await asyncio.gather(*(probe(r) for r in self.pool.replicas.values()))

    async def _learn_end_id(self, rep: Replica) -> None:
        """Ask the backend's tokenizer for the id of the end-of-thinking marker."""
        assert self.session is not None
        body = {"model": rep.model, "prompt": self.settings.gateway.think_end_marker, "add_special_tokens": False}
        try:
            async with self.session.post(rep.url + "/tokenize", json=body,
                                         timeout=aiohttp.ClientTimeout(total=self.settings.gateway.health_timeout_s)) as r:
                tokens = (await r.json()).get("tokens") if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return
        if isinstance(tokens, list) and len(tokens) == 1 and isinstance(tokens[0], int):
            self.pool.think_end_ids[rep.model] = tokens[0]

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.gateway.health_interval_s)
            with contextlib.suppress(Exception):  # the loop must survive anything
                await self.check_health()


class GatewayApp(FastAPI):
    """FastAPI app whose completion endpoints skip the middleware stack and routing.

    ``POST /v1/chat/completions`` and ``POST /v1/completions`` go straight to
    :func:`thinkgate.gateway.hotpath.serve_completion` (which never raises to
    the server); everything else, lifespan included, is plain FastAPI.
    """

    gateway: Gateway

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = HOT_PATHS.get(scope["path"])
            if endpoint is not None:
                await serve_completion(self.gateway, scope, receive, send, endpoint)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, admission: Admission | None = None) -> GatewayApp:
    """Build the gateway app. ``settings`` defaults to :func:`thinkgate.config.load_settings`."""
    if settings is None:
        from thinkgate.config import load_settings

        settings = load_settings()
    gw = Gateway(settings, admission)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        # Everything built so far (modules, FastAPI, predictor) lives as long as
        # the process: moving it out of the collector's reach keeps the full
        # collections that request garbage triggers short.
        gc.collect()
        gc.freeze()
        # Each request leaves a few long-lived objects (the feedback log) and
        # many short-lived ones; a larger first generation runs the collector
        # ~15x less often (measured: GC CPU per request halved under load).
        g0, g1, g2 = gc.get_threshold()
        gc.set_threshold(max(g0, _GC_GEN0), g1, g2)
        try:
            yield
        finally:
            await gw.stop()

    app = GatewayApp(title="thinkgate", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.gateway = gw
    from thinkgate.gateway.routes import install

    install(app, gw)
    from thinkgate.gateway.feedback import install_feedback

    install_feedback(app, gw)
    return app


def app_from_env() -> GatewayApp:
    """App factory for worker processes: settings from ``$THINKGATE_SETTINGS_JSON`` (set by ``serve``)."""
    import os

    return create_app(Settings.model_validate_json(os.environ["THINKGATE_SETTINGS_JSON"]))
