"""A page object for the viewer: upload, navigate, click voxels, read the overlay back from
the canvas pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from playwright.sync_api import Page

# For every pixel of the shown plane: is the canvas pixel at its centre coloured (an overlay)
# rather than grey (the image)? Read from the on-screen canvas, so it checks what is painted.
# The prompts and hints drawn on the views (clicks, strokes, hint boxes: tested on their own) are
# left out: the view is redrawn without them for the read, and drawn with them again after.
_OVERLAY_JS = """(axis) => {
  const view = window.medseg.views[axis];
  const canvas = view.canvas;
  const dpr = window.devicePixelRatio || 1;
  const { prompts, hints } = window.medseg.app;
  const shown = [prompts.visible, hints.visible];
  prompts.visible = false;
  hints.visible = false;
  view.draw();
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  [prompts.visible, hints.visible] = shown;
  view.requestDraw();
  const out = new Array(view.rows * view.cols);
  for (let r = 0; r < view.rows; r++) {
    for (let c = 0; c < view.cols; c++) {
      const [x, y] = view.toScreen(r, c);
      const i = (Math.floor(y * dpr) * canvas.width + Math.floor(x * dpr)) * 4;
      const [R, G, B] = [pixels[i], pixels[i + 1], pixels[i + 2]];
      const chroma = Math.max(Math.abs(R - G), Math.abs(G - B), Math.abs(R - B));
      out[r * view.cols + c] = chroma > 24 ? 1 : 0;
    }
  }
  return out;
}"""


class ViewerPage:
    def __init__(self, page: Page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.page_errors: list[str] = []
        self.expected_errors: set[str] = set()  # titles of error messages a test provokes
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))

    # -- opening ------------------------------------------------------------------------------
    def open(self, session_id: str | None = None) -> None:
        self.page.goto(f"{self.base_url}/ui/" + (f"#session={session_id}" if session_id else ""))
        if session_id:
            self.wait_shown("z")
        else:
            self.page.wait_for_selector("#start:not([hidden])")

    def upload(self, *paths: Path) -> dict:
        self.page.set_input_files("#start input.files", [str(p) for p in paths])
        self.page.wait_for_function("window.medseg.session !== null", timeout=60_000)
        self.wait_shown("z")
        self.page.evaluate("window.medseg.crosshair = false")
        return self.session

    @property
    def session(self) -> dict:
        return self.page.evaluate("window.medseg.session")

    def wait_shown(self, axis: str, index: int | None = None) -> None:
        check = f"&& v.shown.index === {index}" if index is not None else ""
        self.page.wait_for_function(
            f"(() => {{ const v = window.medseg?.views.{axis}; return v && v.shown {check}; }})()"
        )
        self.page.evaluate("window.medseg.crosshair = false")
        self.settle()

    def go_to(self, axis: str, index: int) -> None:
        self.page.evaluate(f"window.medseg.views.{axis}.setIndex({index})")
        self.wait_shown(axis, index)

    # -- input --------------------------------------------------------------------------------
    def screen_point(self, axis: str, row: int, col: int) -> tuple[float, float]:
        box = self.page.locator(f'.view[data-axis="{axis}"] canvas').bounding_box()
        x, y = self.page.evaluate(f"window.medseg.views.{axis}.toScreen({row}, {col})")
        return box["x"] + x, box["y"] + y

    def click(self, axis: str, row: int, col: int, button: str = "left") -> None:
        count = self.page.evaluate("window.medseg.latencies.length")
        self.page.mouse.click(*self.screen_point(axis, row, col), button=button)
        self.settle()
        return count

    def drag(self, axis: str, points: list[tuple[int, int]], button: str = "left") -> None:
        mouse = self.page.mouse
        mouse.move(*self.screen_point(axis, *points[0]))
        mouse.down(button=button)
        for point in points[1:]:
            mouse.move(*self.screen_point(axis, *point), steps=4)
        mouse.up(button=button)
        self.settle()

    def settle(self) -> None:
        """Wait until every queued change is answered and the views have painted."""
        self.page.evaluate("""async () => {
          await window.medseg.editor.settled();
          await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        }""")

    def key(self, combo: str) -> None:
        self.page.locator("#views").hover()
        self.page.keyboard.press(combo)
        self.settle()

    # -- reading back -------------------------------------------------------------------------
    def overlay(self, axis: str = "z") -> np.ndarray:
        """bool (rows, cols): plane pixels painted in a segment colour on the canvas."""
        rows, cols = self.page.evaluate(
            f"[window.medseg.views.{axis}.rows, window.medseg.views.{axis}.cols]"
        )
        flags = self.page.evaluate(_OVERLAY_JS, axis)
        return np.asarray(flags, dtype=bool).reshape(rows, cols)

    def messages(self) -> list[str]:
        return self.page.locator("#messages .note").all_inner_texts()

    def error_messages(self) -> list[dict]:
        return self.page.evaluate(
            "window.medseg ? window.medseg.messages.filter((m) => m.level === 'error') : []"
        )

    def segments(self) -> list[dict]:
        return self.page.evaluate(
            "window.medseg.segments.map(({id, name, color, revision, visible}) =>"
            " ({id, name, color, revision, visible}))"
        )
