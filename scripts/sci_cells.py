# The cells issue #34's benchmarks time, the same in Cella's scientific Python
# (runtime/benches/scientific.rs runs this file as a cell) and in native CPython
# (scripts/sci-native.sh): CELLS maps a name to (setup, timed statement), and
# timed(statement, n) runs the statement n times and returns each run's milliseconds.
import time

CELLS = {
    "groupby_1m": (
        "import numpy as np, pandas as pd\n"
        "rng = np.random.default_rng(0)\n"
        "df = pd.DataFrame({'k': rng.integers(0, 1000, 1_000_000), 'x': rng.random(1_000_000), 'y': rng.random(1_000_000)})",
        "df.groupby('k').mean()",
    ),
    "linalg_2000": (
        "import numpy as np\n"
        "rng = np.random.default_rng(0)\n"
        "a = rng.random((2000, 2000)); b = rng.random((2000, 2000))",
        "a @ b",
    ),
    "line_chart_png": (
        "import io, numpy as np, matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "xs = np.linspace(0, 10, 200)\n"
        "def chart():\n"
        "    fig, ax = plt.subplots(figsize=(6.4, 4.8))\n"
        "    ax.plot(xs, np.sin(xs)); ax.set_title('sin')\n"
        "    out = io.BytesIO(); fig.savefig(out, format='png'); plt.close(fig)\n"
        "    return out.getvalue()",
        "chart()",
    ),
}


def timed(statement, n):
    code = compile(statement, "<timed>", "exec")
    out = []
    for _ in range(n):
        start = time.perf_counter()
        exec(code, globals())
        out.append((time.perf_counter() - start) * 1e3)
    return out
