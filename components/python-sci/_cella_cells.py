"""Running one cell the way a notebook does: its output streamed, the value of a final
expression kept, figures and tables turned into rich results, and its error structured.

A rich result is a dict of formats as Jupyter's display system names them (`text`, `html`,
`png` as base64, `svg`, `markdown`, `latex`, `json`, and `chart`, E2B's data of a
matplotlib chart) with `is_main_result` true for the final expression's value. Figures come
back when the cell calls `plt.show()` or `display(fig)`, when a figure is the final value,
and, like Jupyter's inline backend, for every figure still open when the cell ends.
"""

import ast
import base64
import io
import sys
import traceback

from _cella_charts import chart_of

# The formats a value may offer through IPython's `_repr_*_` methods, with their keys.
REPR_METHODS = (
    ("html", "_repr_html_"),
    ("markdown", "_repr_markdown_"),
    ("svg", "_repr_svg_"),
    ("png", "_repr_png_"),
    ("jpeg", "_repr_jpeg_"),
    ("latex", "_repr_latex_"),
    ("json", "_repr_json_"),
    ("javascript", "_repr_javascript_"),
)


class Stream(io.TextIOBase):
    """A stdout/stderr that keeps everything and streams each write to the host."""

    def __init__(self, channel, emit):
        self.channel = channel
        self.emit = emit
        self.parts = []

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if text:
            self.parts.append(text)
            self.emit(self.channel, text)
        return len(text)

    def value(self):
        return "".join(self.parts)


def is_figure(value):
    figure = sys.modules.get("matplotlib.figure")
    return figure is not None and isinstance(value, figure.Figure)


class Results:
    """The rich results of the cell in progress."""

    current = None

    def __init__(self):
        self.items = []

    @staticmethod
    def close_figures():
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close("all")

    def figure(self, fig, main=False):
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")  # at the figure's own size (figsize x dpi)
        result = {
            "text": repr(fig),
            "png": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "is_main_result": main,
        }
        try:
            chart = chart_of(fig)
        except Exception:  # noqa: BLE001 - a chart we cannot read is left out, the PNG stays
            chart = None
        if chart is not None:
            result["chart"] = chart
        self.items.append(result)
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(fig)

    def value(self, value, main=False):
        if is_figure(value):
            self.figure(value, main)
            return
        result = {"text": repr(value)}
        for key, method in REPR_METHODS:
            fn = getattr(type(value), method, None)
            if fn is None:
                continue
            try:
                data = fn(value)
            except Exception:  # noqa: BLE001 - a failing formatter is skipped, as in IPython
                continue
            if isinstance(data, tuple):
                data = data[0]
            if data is None:
                continue
            if isinstance(data, bytes):
                data = base64.b64encode(data).decode("ascii")
            result[key] = data
        result["is_main_result"] = main
        self.items.append(result)

    def open_figures(self, skip=None):
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        for number in pyplot.get_fignums():
            fig = pyplot.figure(number)
            if fig is not skip:
                self.figure(fig)


def display(*objects, **_options):
    """IPython's `display()`: each object becomes a rich result of the cell."""
    results = Results.current
    for obj in objects:
        if results is None:
            print(repr(obj))
        else:
            results.value(obj)


def show(*_args, **_kwargs):
    """`plt.show()` in a cell: every open figure becomes a result, then is closed."""
    if Results.current is not None:
        Results.current.open_figures()


def patch_pyplot():
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and pyplot.show is not show:
        pyplot.show = show


def error_of(exc, skip_frames):
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    return {
        "name": type(exc).__name__,
        "value": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, tb)),
    }


def compiled(code):
    """A cell as (its statements, its last expression), each compiled or None."""
    if code[:1] not in (" ", "\t"):
        try:
            return None, compile(code, "<cell>", "eval")
        except SyntaxError:
            pass
    tree = ast.parse(code, "<cell>", "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), "<cell>", "eval")
    return compile(tree, "<cell>", "exec"), last


class Cell:
    """One cell in `namespace`, its output streamed through `emit(channel, text)`."""

    def __init__(self, code, namespace, emit):
        self.code = code
        self.namespace = namespace
        self.emit = emit

    def run(self):
        out, err = Stream("stdout", self.emit), Stream("stderr", self.emit)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        results = Results.current = Results()
        self.namespace.setdefault("display", display)
        result, error = None, None
        try:
            try:
                statements, last = compiled(self.code)
            except SyntaxError as e:
                error = error_of(e, 99)
            else:
                try:
                    patch_pyplot()
                    if statements is not None:
                        exec(statements, self.namespace)
                    patch_pyplot()
                    value = None
                    if last is not None:
                        value = eval(last, self.namespace)
                        if value is not None:
                            result = repr(value)
                    results.open_figures(skip=value)
                    if value is not None:
                        results.value(value, main=True)
                except BaseException as e:  # noqa: BLE001 - SystemExit too: a cell cannot end the session
                    error = error_of(e, 1)
                    try:
                        results.open_figures()
                    except Exception:  # noqa: BLE001
                        Results.close_figures()
            sys.stdout.flush()
        finally:
            sys.stdout, sys.stderr = saved
            Results.current = None
        return {
            "stdout": out.value(),
            "stderr": err.value(),
            "result": result,
            "results": results.items,
            "error": error,
        }
