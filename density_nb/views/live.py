"""``LiveTrace``: the explorer of a result that grows while ``generate``/``trace_live`` work in a
background thread, with progress and a cancel button (numpy and traitlets only, no torch)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import traitlets

from density_nb.views.data import token_widths
from density_nb.views.explorer import _default_stratum, _DensityWidget

Step = Callable[[Any, int], None]  # (the result so far, steps done)
Work = Callable[[Step, threading.Event], Any]  # runs the steps, stops early when the event is set; returns the last result


def placeholder(model: str, tokens: list[str]) -> dict[str, Any]:
    """The data of a view whose text is known and none of whose roots is traced yet (its tokens, uncoloured)."""
    return {"model": model, "tokens": list(tokens), "tw": token_widths(tokens), "roots": [], "grid": [], "n_layers": 0, "n_heads": 0}


class GrowingView(_DensityWidget):
    """A view of a result that grows while work runs elsewhere (``LiveTrace``, the playground): ``show`` puts
    the roots done so far on screen, the selection following the newest root (at its s_top1) unless the user
    moved it. ``status``: ``state`` ("running", "done", "cancelled", "failed"), ``done`` and ``total`` steps,
    their ``unit``, a ``note``."""

    status = traitlets.Dict().tag(sync=True)

    def __init__(self, result: Any = None, **kwargs: Any) -> None:
        super().__init__(result, **kwargs)
        self._newest = -1  # the newest root and the stratum shown for it when the view last followed
        self._shown_stratum = self.stratum

    def show(self, result: Any, done: int, note: str = "") -> None:
        """Show ``result`` (the steps done so far). The selection follows the newest step (at its s_top1)
        unless the user moved it: a root or stratum chosen in the view stays."""
        if result is None:
            return
        newest = int(result.roots[-1])
        follow = self.result is None or self.root == self._newest or self.root not in set(result.roots.tolist())
        root = newest if follow else self.root
        stratum = _default_stratum(result, root) if follow and self.stratum == self._shown_stratum else self.stratum
        state = self._result_state(result, root, stratum)
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)
            self.status = {**self.status, "done": int(done), "note": note}
        self.result = result
        self._newest, self._shown_stratum = newest, stratum


class LiveTrace(GrowingView):
    """An explorer that updates as each step completes. ``result`` is what is done so far (None before
    the first step); ``cancel()`` (or the view's Cancel button) stops the work (``trace_live``: within
    a layer of the passes in flight; ``generate``: after the current step) and keeps what is done;
    ``wait()`` blocks until the work ends and returns the result. ``status`` as ``GrowingView``'s."""

    _view = "live"

    def __init__(self, model: str, tokens: list[str], total: int, unit: str, tokenizer: Any = None) -> None:
        super().__init__(None, tokenizer=tokenizer, data=placeholder(model, tokens))
        self.status = {"state": "running", "done": 0, "total": int(total), "unit": unit, "note": ""}
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self.on_msg(self._on_message)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "cancel":
            self.cancel()

    def run(self, work: Work) -> LiveTrace:
        """Start ``work`` in a background thread, showing each result it reports; returns self."""

        def target() -> None:
            try:
                result = work(self.show, self._stop)
                stopped = (getattr(result, "settings", None) or {}).get("generation", {}).get("stopped")
                self._end("cancelled" if self._stop.is_set() else "done", "the model ended the text" if stopped == "end_of_text" else "")
            except BaseException as err:
                self._error = err
                self._end("failed", f"{type(err).__name__}: {err}")
            finally:
                self._finished.set()

        threading.Thread(target=target, name="density_nb-live", daemon=True).start()
        return self

    def _end(self, state: str, note: str = "") -> None:
        self.status = {**self.status, "state": state, "note": note or self.status.get("note", "")}

    def cancel(self) -> None:
        """Stop the work (see the class); what is done stays in ``result``."""
        self._stop.set()

    @property
    def done(self) -> bool:
        """True once the work has ended (finished, cancelled or failed)."""
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the work ends and return the result (re-raising its error); ``TimeoutError`` after ``timeout`` seconds."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"still running after {timeout} s ({self.status.get('done')} of {self.status.get('total')} done).")
        if self._error is not None:
            raise self._error
        return self.result
