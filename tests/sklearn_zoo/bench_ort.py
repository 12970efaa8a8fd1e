"""ONNX Runtime, one thread, on the zoo's tree models: the reference side of
benches/trees.rs (same files, same rows, same batch sizes).

Usage: bench_ort.py [ZOO_DIR]   (default target/sklearn-zoo)
"""

import os
import statistics
import sys
import time

import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benches"))
from compare import forest_rows, one_thread_session  # noqa: E402

MODELS = [
    ("random_forest_iris", 4, 8.0),
    ("random_forest_reg_diabetes", 10, 0.2),
    ("random_forest_reg_diabetes_v5", 10, 0.2),
]


def main():
    zoo = sys.argv[1] if len(sys.argv) > 1 else "target/sklearn-zoo"
    for name, features, scale in MODELS:
        if not os.path.exists(f"{zoo}/{name}/1/model.onnx"):
            print(f"{name}: not generated (see benches/trees.rs), skipped")
            continue
        sess = one_thread_session(f"{zoo}/{name}/1/model.onnx")
        feed_name = sess.get_inputs()[0].name
        for batch in (1, 32):
            feed = {feed_name: forest_rows(batch, features, scale)}  # the rows of benches/trees.rs
            for _ in range(200):
                sess.run(None, feed)
            # The median of 30 rounds of 500 calls, as criterion reports a
            # central value; the call includes the Python binding's cost.
            means = []
            for _ in range(30):
                n = 500
                t = time.perf_counter()
                for _ in range(n):
                    sess.run(None, feed)
                means.append((time.perf_counter() - t) / n)
            med = statistics.median(means)
            print(
                f"onnxruntime {ort.__version__} 1 thread  {name}/batch{batch}: "
                f"{med * 1e6:.2f} µs per call (median), {med * 1e6 / batch:.2f} µs per row"
            )


if __name__ == "__main__":
    main()
