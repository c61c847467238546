"""``Playground``: type a text, trace it and watch its strip fill in; change one word, trace again and see what
moved. A text box with its character and token counts, a model picker, the grid and baselines, Trace
(Ctrl/Cmd+Enter), progress and Cancel, the explorer of the result underneath, the session's history (results
kept), "compare with…" (two entries, or the text on another model: ``views.difference``) and example texts.

The view holds no model and imports no torch: tracing comes from above through a ``Tracer`` (what
``density_nb.playground(...)``, in ``teaching/playground.py``, builds from models). A trace runs in a thread of
its own, so the kernel stays free; one at a time (a new one cancels the running one); every error a user can
cause (``DensityNBError``: empty text, too long, unknown model) is shown in the view, never raised into the
output area.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import traitlets

from density_nb.errors import DensityNBError
from density_nb.views.difference import difference_data
from density_nb.views.live import GrowingView, placeholder
from density_nb.views.theme import LABELS


class Tracer(Protocol):
    """What the playground needs from the layer that knows models (``teaching.playground.ModelTracer``)."""

    @property
    def models(self) -> Sequence[str]:
        """The names the picker offers."""
        ...

    @property
    def grids(self) -> Sequence[str]:
        """The size grids offered ("fast", "paper")."""
        ...

    @property
    def max_tokens(self) -> int:
        """The longest text it traces, in tokens."""
        ...

    def count(self, model: str, text: str) -> int | None:
        """The number of tokens ``text`` has for ``model`` (its tokenizer alone); None when only loading it can tell."""
        ...

    def start(self, model: str, text: str) -> tuple[list[str], int]:
        """Check the text, load the model (first use) and tokenize: the tokens and the number of roots to trace.
        Raises ``DensityNBError`` for what the user can fix."""
        ...

    def steps(self, model: str, text: str, grid: str, baselines: Sequence[str], stop: threading.Event) -> Iterator[Any]:
        """The result of the roots traced so far after each masked pass (``tracing.trace_steps``); ends early when
        ``stop`` is set; the last result is ``trace``'s, bitwise."""
        ...

    def tokenizer(self, model: str) -> Any:
        """What names the predicted tokens of ``model``'s results (its tokenizer, or the loaded model)."""
        ...


@dataclass
class _Job:
    """One trace: what it traces, its stop event and thread, and what to do with its entry when it completes."""

    model: str
    text: str
    grid: str
    baselines: tuple[str, ...]
    then: Callable[[int], Any] | None = None  # called with its history index when it runs to the end
    stop: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def key(self) -> tuple[str, str, str, tuple[str, ...]]:
        return self.model, self.text, self.grid, self.baselines


def _short(text: str, n: int = 60) -> str:
    """``text`` on one line, cut to ``n`` characters."""
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 1] + "…"


class Playground(GrowingView):
    """Type a text, trace it, see its density; change one word and compare (see the module).

    From Python: ``pg.text = "..."; pg.run()`` does what the Trace button does (it returns at once; ``wait()``
    blocks until the trace ends and returns ``pg.result``); ``pg.result`` is the result shown (a
    ``DensityResult``, the roots done so far while tracing), ``pg.history`` the results traced in this playground
    (``select(i)`` shows one again), ``compare(a, b)`` shows two of them side by side with their per-token
    difference, ``compare_model(name)`` the text shown on another model; ``cancel()`` stops a trace and keeps what
    is done; ``error`` says why the last request was refused. Traits ``model``, ``grid``, ``baselines`` are the
    settings the next trace uses. ``wait()`` and ``compare()`` redraw the static snapshot a saved notebook keeps
    of the playground (what GitHub shows), so it shows the last result and comparison, not an empty box."""

    _view = "playground"

    text = traitlets.Unicode("").tag(sync=True)
    model = traitlets.Unicode("").tag(sync=True)
    grid = traitlets.Unicode("fast").tag(sync=True)
    baselines = traitlets.List(traitlets.Unicode()).tag(sync=True)
    options = traitlets.Dict().tag(sync=True)  # models, grids, baselines offered, max_tokens, examples
    counts = traitlets.Dict().tag(sync=True)  # the token count of a text: model, text, tokens (None: unknown)
    error = traitlets.Unicode("").tag(sync=True)
    entries = traitlets.List(traitlets.Dict()).tag(sync=True)  # the history as the view lists it
    current = traitlets.Int(-1).tag(sync=True)  # the history entry shown (-1: a trace in progress, or none)
    comparison = traitlets.Dict().tag(sync=True)  # views.difference data of the comparison shown ({}: none)
    compare_pair = traitlets.List(traitlets.Int()).tag(sync=True)  # its two history entries
    compare_span = traitlets.List(traitlets.Int(), default_value=[0, 0]).tag(sync=True)  # characters selected in it

    def __init__(
        self,
        tracer: Tracer,
        *,
        examples: Sequence[Mapping[str, Any]] = (),
        text: str = "",
        model: str | None = None,
        grid: str = "fast",
        baselines: Sequence[str] = (),
    ) -> None:
        self._tracer = tracer
        self._lock = threading.RLock()  # the job, the history and the view change together
        self._job: _Job | None = None
        self._results: list[Any] = []
        self._tokenizers: list[Any] = []
        self._count_lock = threading.Lock()
        self._count_wanted: tuple[str, str] | None = None
        self._counting = False
        self._displays: list[Any] = []  # IPython display handles: the snapshot they show is redrawn by wait()
        options = {
            "models": list(tracer.models),
            "grids": list(tracer.grids),
            "baselines": [[name, LABELS["baselines"][name], LABELS["baseline_help"][name]] for name in LABELS["baselines"]],
            "max_tokens": int(tracer.max_tokens),
            "examples": [dict(group) for group in examples],
        }
        first = model if model is not None else (tracer.models[0] if tracer.models else "")
        super().__init__(None, data=placeholder(first, []), options=options)
        with self.hold_sync():
            self.model, self.grid, self.baselines, self.text = first, grid, list(baselines), text
        self.observe(self._count_soon, names=["text", "model"])
        self.on_msg(self._on_message)
        self._count_soon()

    # ---- validation ---------------------------------------------------------------------------------
    @traitlets.validate("grid")
    def _check_grid(self, proposal: Any) -> str:
        grids = (self.options or {}).get("grids") or [proposal["value"]]
        if proposal["value"] not in grids:
            raise traitlets.TraitError(f"grid must be one of {', '.join(grids)}, not {proposal['value']!r}.")
        return str(proposal["value"])

    @traitlets.validate("baselines")
    def _check_baselines(self, proposal: Any) -> list[str]:
        known = list(LABELS["baselines"])
        bad = [b for b in proposal["value"] if b not in known]
        if bad:
            raise traitlets.TraitError(f"baselines must be among {', '.join(known)}, not {bad}.")
        return [b for b in known if b in proposal["value"]]

    # ---- what the view sends -------------------------------------------------------------------------
    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "trace":
            if isinstance(content.get("text"), str):  # the text as typed when Trace was pressed (its sync may come later)
                self.text = content["text"]
            self.run()
        elif kind == "cancel":
            self.cancel()
        elif kind == "select":
            self.select(int(content.get("index", -1)))
        elif kind == "compare":
            self._compare(int(content.get("a", -2)), int(content.get("b", -1)))
        elif kind == "compare_model":
            self.compare_model(str(content.get("model", "")))
        elif kind == "close_comparison":
            self.close_comparison()

    # ---- tracing -------------------------------------------------------------------------------------
    def run(self) -> Playground:
        """Trace ``text`` with ``model``, ``grid`` and ``baselines`` (what the Trace button does): returns at once,
        the strip filling in as roots complete. A trace still running is cancelled (its roots so far go to the
        history); a text already traced with these settings is shown again, not re-traced. A refused request
        says why in the view (``error``)."""
        return self._start(_Job(self.model, self.text, self.grid, tuple(self.baselines)))

    def _start(self, job: _Job) -> Playground:
        with self._lock:
            problem = self._refuse(job)
            if problem:
                self.error = problem
                return self
            self.error = ""
            known = self._find(job.key)
            previous = self._job if self._job is not None and not self._job.ended.is_set() else None
            if previous is not None and known is not None:
                previous.stop.set()  # its roots so far still go to the history
                self._job = None
            if known is not None:
                self._show_entry(known, f"already traced: #{known + 1} shown again, not re-traced")
                if job.then is not None:
                    job.then(known)
                return self
            note = ""
            if previous is not None:
                previous.stop.set()
                note = f"the trace of “{_short(previous.text, 30)}” was cancelled for this one (its roots so far are in the history)"
            self._job = job
            self.status = {"state": "running", "done": 0, "total": 0, "unit": "roots", "note": note or f"preparing {job.model}…"}
            job.thread = threading.Thread(target=self._work, args=(job, previous, note), name="density_nb-playground", daemon=True)
            job.thread.start()
        return self

    def _refuse(self, job: _Job) -> str:
        """Why ``job`` cannot start ("" when it can): what needs no model to tell."""
        if not job.text.strip():
            return "The text is empty: type a sentence (or pick an example) and press Trace."
        models = self.options.get("models", [])
        if job.model not in models:
            return f"Unknown model {job.model!r}: this playground offers {', '.join(models)} (pass others to playground([...]))."
        return ""

    def _find(self, key: tuple[str, str, str, tuple[str, ...]]) -> int | None:
        """The history entry traced to the end with these settings, if any."""
        for i, e in enumerate(self.entries):
            if e["state"] == "done" and (e["model"], e["text"], e["grid"], tuple(e["baselines"])) == key:
                return i
        return None

    def _work(self, job: _Job, previous: _Job | None, note: str) -> None:
        """The trace, in its own thread: after the trace before it has stopped (within a layer of a pass), load
        and tokenize, show the tokens, then each step."""
        result = None
        try:
            if previous is not None and previous.thread is not None:
                previous.thread.join()
            if job.stop.is_set():
                return
            tokens, total = self._tracer.start(job.model, job.text)
            tokenizer = self._tracer.tokenizer(job.model)
            with self._lock:
                if job is not self._job:
                    return
                self._tokenizer, self.result, self._newest = tokenizer, None, -1
                self._roots, self._k = set(), 0  # the validation of root/stratum follows the new data
                with self.hold_sync():
                    self.data, self.shares, self.root, self.stratum = placeholder(job.model, tokens), b"", 0, 0
                    self.current = -1
                    self.status = {"state": "running", "done": 0, "total": int(total), "unit": "roots", "note": note}
                self._shown_stratum = self.stratum
            for result in self._tracer.steps(job.model, job.text, job.grid, job.baselines, job.stop):
                with self._lock:
                    if job is self._job:
                        self.show(result, len(result.roots), note)
            self._end(job, result, tokenizer)
        except DensityNBError as err:
            self._fail(job, " ".join(str(err).split()))
        except Exception as err:  # a bug: said in the view, never a traceback in the output area
            self._fail(job, f"Something went wrong that density_nb did not expect ({type(err).__name__}: {err}); please report it.")
        finally:
            job.ended.set()

    def _end(self, job: _Job, result: Any, tokenizer: Any) -> None:
        """File what ``job`` traced in the history and say how it ended; then its ``then``."""
        then = None
        with self._lock:
            cancelled = job.stop.is_set()
            index = None
            if result is not None and len(result.roots):
                index = len(self._results)
                self._results.append(result)
                self._tokenizers.append(tokenizer)
                total = len(result.tokens) - 1
                entry = {
                    "model": job.model,
                    "text": job.text,
                    "grid": job.grid,
                    "baselines": list(job.baselines),
                    "state": "cancelled" if cancelled else "done",
                    "roots": len(result.roots),
                    "total": total,
                    "mean": float(np.nanmean(result.density)),
                }
                self.entries = [*self.entries, entry]
                then = job.then if not cancelled else None
            if job is self._job:
                with self.hold_sync():
                    if index is not None:
                        self.current = index
                    self.status = {**self.status, "state": "cancelled" if cancelled else "done"}
        if then is not None and index is not None:
            then(index)

    def _fail(self, job: _Job, message: str) -> None:
        with self._lock:
            if job is self._job:
                with self.hold_sync():
                    self.error = message
                    self.status = {**self.status, "state": "failed", "note": ""} if self.status.get("total") else {}

    def cancel(self) -> None:
        """Stop the running trace (within a layer of its passes in flight); the roots done stay shown and go to
        the history."""
        with self._lock:
            if self._job is not None:
                self._job.stop.set()

    @property
    def done(self) -> bool:
        """True when no trace is running."""
        return self._job is None or self._job.ended.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the running trace ends (``TimeoutError`` after ``timeout`` seconds) and return ``result``;
        the static snapshot a notebook keeps of this playground (what GitHub shows) is redrawn with it."""
        job = self._job
        if job is not None and not job.ended.wait(timeout):
            raise TimeoutError(f"still tracing after {timeout} s ({self.status.get('done')} of {self.status.get('total')} roots done).")
        self._redraw_snapshots()
        return self.result

    # ---- the history ----------------------------------------------------------------------------------
    @property
    def history(self) -> list[Any]:
        """The results traced in this playground, oldest first (a cancelled trace's roots so far included)."""
        return list(self._results)

    def _index(self, index: int) -> int | None:
        n = len(self._results)
        return index % n if n and -n <= index < n else None

    def select(self, index: int) -> Playground:
        """Show history entry ``index`` again (its text, model and settings too): nothing is re-traced. A trace
        still running is cancelled."""
        with self._lock:
            found = self._index(index)
            if found is None:
                self.error = f"There is no entry {index} in the history ({len(self._results)} traced so far)."
                return self
            if self._job is not None and not self._job.ended.is_set():
                self._job.stop.set()
                self._job = None
            self.error = ""
            self._show_entry(found, f"#{found + 1} from the history")
        return self

    def _show_entry(self, index: int, note: str) -> None:
        result, entry = self._results[index], self.entries[index]
        self._tokenizer = self._tokenizers[index]
        state = self._result_state(result, None, None)
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)
            self.text, self.model, self.grid, self.baselines = entry["text"], entry["model"], entry["grid"], list(entry["baselines"])
            self.current = index
            self.status = {"state": entry["state"], "done": entry["roots"], "total": entry["total"], "unit": "roots", "note": note}
        self.result = result
        self._newest, self._shown_stratum = int(result.roots[-1]), self.stratum

    # ---- comparisons ------------------------------------------------------------------------------------
    def compare(self, a: int = -2, b: int = -1) -> Playground:
        """Show history entries ``a`` and ``b`` side by side (as ``compare`` does; the texts may differ) with the
        per-token difference, b − a, of the measure shown on the diverging scale; the notebook's snapshot of the
        playground is redrawn with it (as ``wait()`` redraws it)."""
        self._compare(a, b)
        self._redraw_snapshots()
        return self

    def _compare(self, a: int, b: int) -> Playground:
        with self._lock:
            ia, ib = self._index(a), self._index(b)
            if ia is None or ib is None or ia == ib:
                have = len(self._results)
                self.error = f"Compare needs two different entries of the history ({have} traced so far): trace another text first."
                return self
            entries = self.entries
            grids = {entries[ia]["grid"], entries[ib]["grid"]}
            names = [f"#{i + 1} {entries[i]['model']}" + (f", {entries[i]['grid']} grid" if len(grids) > 1 else "") for i in (ia, ib)]
            data = difference_data(self._results[ia], self._results[ib], names)
            with self.hold_sync():
                self.error = ""
                self.comparison, self.compare_pair, self.compare_span = data, [ia, ib], [0, 0]
        return self

    def compare_model(self, model: str) -> Playground:
        """Trace the text shown on ``model`` too (unless it is in the history already) and compare the two."""
        with self._lock:
            shown = self.current
            if shown < 0:
                self.error = "Trace a text first (or pick one in the history), then compare it on another model."
                return self
            entry = self.entries[shown]
            if model == entry["model"]:
                self.error = f"#{shown + 1} is traced with {model} already: pick another model to compare with."
                return self
            self.model = model
            job = _Job(model, entry["text"], entry["grid"], tuple(entry["baselines"]), then=lambda index: self._compare(shown, index))
        return self._start(job)

    def close_comparison(self) -> Playground:
        """Hide the comparison."""
        with self.hold_sync():
            self.comparison, self.compare_pair, self.compare_span = {}, [], [0, 0]
        return self

    # ---- the token count ---------------------------------------------------------------------------------
    def _count_soon(self, _change: Any = None) -> None:
        """Count the text's tokens in a thread (a tokenizer's first load can take seconds): the latest text wins."""
        with self._count_lock:
            self._count_wanted = (self.model, self.text)
            if self._counting:
                return
            self._counting = True
        threading.Thread(target=self._count_loop, name="density_nb-count", daemon=True).start()

    def _count_loop(self) -> None:
        done: tuple[str, str] | None = None
        while True:
            with self._count_lock:
                want = self._count_wanted
                if want is None or want == done:
                    self._counting = False
                    return
            model, text = want
            try:
                tokens = self._tracer.count(model, text) if model in self.options.get("models", []) else None
            except Exception:  # the trace says what is wrong; a count is only a hint
                tokens = None
            self.counts = {"model": model, "text": text, "tokens": tokens}
            done = want

    # ---- the notebook's static snapshot ----------------------------------------------------------------------
    def _ipython_display_(self, **kwargs: Any) -> None:
        """Display the view with its SVG snapshot under a display id, so that ``wait()`` can redraw the snapshot
        a saved notebook keeps (a front end with widgets shows the live view)."""
        from IPython.display import display  # IPython: only where the view is displayed

        bundle = self._repr_mimebundle_()
        if bundle is None:
            return
        data, metadata = bundle
        handle = display(data, metadata=metadata, raw=True, display_id=True)
        if handle is not None:
            self._displays.append(handle)

    def _redraw_snapshots(self) -> None:
        bundle = self._repr_mimebundle_() if self._displays else None
        if bundle is None:
            return
        data, metadata = bundle
        for handle in self._displays:
            handle.update(data, metadata=metadata, raw=True)
