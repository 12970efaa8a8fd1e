"""The scikit-learn zoo: train, convert and serve scikit-learn models, and
check that warden answers exactly what scikit-learn predicts.

Each estimator or pipeline below is trained on a data set that ships inside
scikit-learn, converted with skl2onnx (versions pinned in
requirements-test.txt; classifiers always with zipmap=False), written to a
temporary model repository, and served by the real warden binary. Each model
is then queried through the real tritonclient.http with held-out rows and
its outputs are compared with scikit-learn's own:

- labels exactly;
- probabilities, decision values and regression values within RTOL
  relative (ATOL absolute for values near zero, where a relative bound is
  meaningless: a probability of 1e-12 against 0).

A model warden refuses to load is reported as such with warden's message,
never dropped. A final check exports a classifier WITH its ZipMap and
requires warden to refuse it at start-up with a message naming ZipMap and
the zipmap option.

Usage: zoo.py [--warden PATH] [--keep DIR] [-k SUBSTRING]
Exit status 0 only when every model matched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

from sklearn import datasets  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import (  # noqa: E402
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Perceptron,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.naive_bayes import BernoulliNB, GaussianNB, MultinomialNB  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import Binarizer, MaxAbsScaler, MinMaxScaler, Normalizer, OneHotEncoder, PolynomialFeatures, StandardScaler  # noqa: E402
from sklearn.svm import SVC, SVR, LinearSVC  # noqa: E402
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType, StringTensorType  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RTOL = 1e-5
ATOL = 1e-6
SEED = 0


def split(X, y, n_test=40):
    rng = np.random.RandomState(SEED)
    idx = rng.permutation(len(X))
    return X[idx[n_test:]], y[idx[n_test:]], X[idx[:n_test]], y[idx[:n_test]]


def load(name):
    loader = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
        "digits": datasets.load_digits,
    }[name]
    X, y = loader(return_X_y=True)
    return split(X.astype(np.float32), y)


def with_nans(X, rate=0.1):
    rng = np.random.RandomState(SEED + 1)
    X = X.copy()
    X[rng.rand(*X.shape) < rate] = np.nan
    return X


def mixed(dataset):
    """Three numeric columns (some missing) and two string columns, as
    separate inputs (what skl2onnx makes of a DataFrame)."""
    Xtr, ytr, Xte, yte = load(dataset)

    def frame(X):
        num = with_nans(X[:, [0, 2, 3]], 0.05)
        a = np.where(X[:, 1] > np.median(X[:, 1]), "high", "low").astype(object)
        b = np.array(["c%d" % (int(abs(v) * 1000) % 4) for v in X[:, 4]], dtype=object)
        out = np.empty((len(X), 5), dtype=object)
        out[:, :3] = num
        out[:, 3] = a
        out[:, 4] = b
        return out

    return frame(Xtr), ytr, frame(Xte), yte


MIXED_TYPES = [(f"num{i}", FloatTensorType([None, 1])) for i in range(3)] + [
    ("cat0", StringTensorType([None, 1])),
    ("cat1", StringTensorType([None, 1])),
]


def mixed_inputs(X):
    feeds = {f"num{i}": X[:, i : i + 1].astype(np.float32) for i in range(3)}
    feeds["cat0"] = X[:, 3:4].astype(str).astype(object)
    feeds["cat1"] = X[:, 4:5].astype(str).astype(object)
    return feeds


def mixed_ct():
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 1, 2]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), [3, 4]),
        ]
    )


# (name, data set, estimator factory, options). Data set "mixed:<name>" is
# the mixed numeric/string variant; "nan:<name>" has 10 % missing values;
# "f64:<name>" is converted and served in double precision.
ZOO = [
    ("logreg_iris", "iris", lambda: LogisticRegression(max_iter=1000)),
    ("logreg_scaled_breast_cancer", "breast_cancer", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
    ("linreg_diabetes", "diabetes", LinearRegression),
    ("ridge_diabetes", "diabetes", Ridge),
    ("lasso_diabetes", "diabetes", lambda: Lasso(alpha=0.1)),
    ("elasticnet_diabetes", "diabetes", lambda: ElasticNet(alpha=0.01)),
    ("sgd_classifier_wine", "wine", lambda: make_pipeline(StandardScaler(), SGDClassifier(loss="log_loss", random_state=SEED))),
    ("sgd_regressor_diabetes", "diabetes", lambda: make_pipeline(StandardScaler(), SGDRegressor(random_state=SEED))),
    ("decision_tree_wine", "wine", lambda: DecisionTreeClassifier(random_state=SEED)),
    ("decision_tree_reg_diabetes", "diabetes", lambda: DecisionTreeRegressor(max_depth=8, random_state=SEED)),
    ("random_forest_iris", "iris", lambda: RandomForestClassifier(n_estimators=100, random_state=SEED)),
    ("random_forest_breast_cancer", "breast_cancer", lambda: RandomForestClassifier(n_estimators=50, random_state=SEED)),
    ("random_forest_reg_diabetes", "diabetes", lambda: RandomForestRegressor(n_estimators=50, max_depth=10, random_state=SEED)),
    ("extra_trees_wine", "wine", lambda: ExtraTreesClassifier(n_estimators=50, random_state=SEED)),
    ("extra_trees_reg_diabetes", "diabetes", lambda: ExtraTreesRegressor(n_estimators=50, max_depth=10, random_state=SEED)),
    ("gradient_boosting_breast_cancer", "breast_cancer", lambda: GradientBoostingClassifier(n_estimators=50, random_state=SEED)),
    ("gradient_boosting_iris", "iris", lambda: GradientBoostingClassifier(n_estimators=50, random_state=SEED)),
    ("gradient_boosting_reg_diabetes", "diabetes", lambda: GradientBoostingRegressor(n_estimators=50, random_state=SEED)),
    ("hist_gradient_boosting_wine", "wine", lambda: HistGradientBoostingClassifier(max_iter=30, random_state=SEED)),
    ("knn_iris", "iris", lambda: KNeighborsClassifier(n_neighbors=5)),
    ("knn_reg_diabetes", "diabetes", lambda: KNeighborsRegressor(n_neighbors=5)),
    ("svc_rbf_iris", "iris", lambda: SVC(kernel="rbf")),
    ("svc_linear_breast_cancer", "breast_cancer", lambda: make_pipeline(StandardScaler(), SVC(kernel="linear"))),
    # Bare: skl2onnx 1.20 fails on LinearSVC inside a Pipeline (it asks the
    # LinearSVC for a zipmap option it does not have).
    ("linear_svc_wine", "wine", lambda: LinearSVC(random_state=SEED, max_iter=20000)),
    ("linear_svc_binary_breast_cancer", "breast_cancer", lambda: LinearSVC(random_state=SEED, max_iter=50000)),
    ("logreg_binary_breast_cancer", "breast_cancer", lambda: LogisticRegression(max_iter=5000)),
    ("sgd_hinge_breast_cancer", "breast_cancer", lambda: make_pipeline(StandardScaler(), SGDClassifier(loss="hinge", random_state=SEED))),
    ("sgd_log_binary_breast_cancer", "breast_cancer", lambda: make_pipeline(StandardScaler(), SGDClassifier(loss="log_loss", random_state=SEED))),
    ("ridge_classifier_wine", "wine", lambda: make_pipeline(StandardScaler(), RidgeClassifier())),
    ("ridge_classifier_binary_breast_cancer", "breast_cancer", lambda: make_pipeline(StandardScaler(), RidgeClassifier())),
    ("perceptron_iris", "iris", lambda: make_pipeline(StandardScaler(), Perceptron(random_state=SEED))),
    ("binarizer_logreg_breast_cancer", "breast_cancer", lambda: make_pipeline(StandardScaler(), Binarizer(threshold=0.0), LogisticRegression(max_iter=1000))),
    ("svr_rbf_diabetes", "diabetes", lambda: SVR(kernel="rbf", C=100)),
    ("svr_linear_diabetes", "diabetes", lambda: SVR(kernel="linear", C=100)),
    ("gaussian_nb_iris", "iris", GaussianNB),
    ("multinomial_nb_digits", "digits", MultinomialNB),
    # In float32 this pipeline cannot match scikit-learn within RTOL in any
    # runtime (see FLOAT32_BOUND); the same pipeline in double follows.
    ("binarizer_bernoulli_nb_digits", "digits", lambda: make_pipeline(Binarizer(threshold=4.0), BernoulliNB())),
    # Double precision end to end (FP64 in and out). skl2onnx 1.20's double
    # Binarizer turns a value equal to the threshold into 1 (scikit-learn:
    # 0); digits pixels are integers, so threshold 4.5 is the same model as
    # 4.0 (data_for checks it) and keeps clear of that converter bug.
    ("binarizer_bernoulli_nb_f64_digits", "f64:digits", lambda: make_pipeline(Binarizer(threshold=4.5), BernoulliNB())),
    ("bernoulli_nb_f64_digits", "f64:digits", lambda: BernoulliNB(binarize=4.0)),
    ("multinomial_nb_f64_digits", "f64:digits", MultinomialNB),
    ("mlp_digits", "digits", lambda: make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=SEED))),
    ("mlp_reg_diabetes", "diabetes", lambda: make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(32,), max_iter=500, random_state=SEED))),
    ("minmax_svc_wine", "wine", lambda: make_pipeline(MinMaxScaler(), SVC(kernel="rbf"))),
    # The three norms of warden's Normalizer; MAX on diabetes' signed features
    # checks that it takes the largest absolute value, as scikit-learn does.
    ("normalizer_l1_logreg_iris", "iris", lambda: make_pipeline(Normalizer(norm="l1"), LogisticRegression(max_iter=1000))),
    ("normalizer_l2_svc_wine", "wine", lambda: make_pipeline(Normalizer(norm="l2"), SVC(kernel="rbf"))),
    ("normalizer_max_ridge_diabetes", "diabetes", lambda: make_pipeline(Normalizer(norm="max"), Ridge())),
    ("pca_logreg_digits", "digits", lambda: make_pipeline(PCA(n_components=16, random_state=SEED), LogisticRegression(max_iter=2000))),
    ("imputer_random_forest_breast_cancer", "nan:breast_cancer", lambda: make_pipeline(SimpleImputer(), RandomForestClassifier(n_estimators=30, random_state=SEED))),
    ("column_transformer_logreg_wine", "mixed:wine", lambda: Pipeline([("ct", mixed_ct()), ("m", LogisticRegression(max_iter=1000))])),
    ("column_transformer_ridge_diabetes", "mixed:diabetes", lambda: Pipeline([("ct", mixed_ct()), ("m", Ridge())])),
    ("string_labels_random_forest_iris", "strlabels:iris", lambda: RandomForestClassifier(n_estimators=20, random_state=SEED)),
    # tract's LinearRegressor built an EinSum that did not type here (issue 18).
    ("poly_maxabs_ridge_diabetes", "diabetes", lambda: make_pipeline(PolynomialFeatures(degree=2), MaxAbsScaler(), Ridge())),
]


def data_for(spec):
    kind, _, name = spec.rpartition(":")
    if kind == "mixed":
        return mixed(name)
    Xtr, ytr, Xte, yte = load(name)
    if kind == "nan":
        return with_nans(Xtr), ytr, with_nans(Xte), yte
    if kind == "f64":
        if name == "digits":
            # binarizer_bernoulli_nb_f64_digits's threshold of 4.5 stands
            # for 4.0 only on integer pixels.
            assert np.array_equal(Xtr, np.round(Xtr)) and np.array_equal(Xte, np.round(Xte)), "digits pixels are not integers"
        return Xtr.astype(np.float64), ytr, Xte.astype(np.float64), yte
    if kind == "strlabels":
        names = np.array(["setosa", "versicolor", "virginica"], dtype=object)
        return Xtr, names[ytr], Xte, names[yte]
    return Xtr, ytr, Xte, yte


def is_classifier(model):
    return getattr(model, "_estimator_type", None) == "classifier" or hasattr(model, "classes_")


def convert(model, Xtr, mixed_input):
    def go(options):
        if mixed_input:
            return to_onnx(model, initial_types=MIXED_TYPES, options=options)
        return to_onnx(model, Xtr[:1], options=options)

    if not is_classifier(model):
        return go(None)
    try:
        return go({id(model): {"zipmap": False}})
    except NameError:
        # Classifiers without probabilities (LinearSVC) have no ZipMap
        # and reject the option.
        return go(None)


def expected(model, X):
    """scikit-learn's answers: label (classifiers) and the float output."""
    if is_classifier(model):
        label = model.predict(X)
        if hasattr(model, "predict_proba"):
            return label, model.predict_proba(X), "probabilities"
        return label, model.decision_function(X), "decision_function"
    return None, model.predict(X).reshape(len(X), -1), "predict"


class Warden:
    """`warden serve` on a model repository, on free ports."""

    def __init__(self, binary, repo):
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--model-repository", str(repo), "--http-port", "0", "--metrics-port", "0", "--log-format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = []
        self.ready = threading.Event()
        self.address = None
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            try:
                event = json.loads(line)
            except ValueError:
                continue
            fields = event.get("fields", event)
            if fields.get("message") == "HTTP listening; ready":
                self.address = fields.get("address")
                self.ready.set()
        self.ready.set()

    def wait(self, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline and not self.ready.is_set():
            time.sleep(0.05)
        return self.address is not None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return "\n".join(self.lines)


def failing_model(log, names):
    """The model named in a start-up failure, if any."""
    for line in reversed(log.splitlines()):
        for n in names:
            if f"'{n}'" in line or f"/{n}/" in line or f'"{n}"' in line or f"model={n}" in line:
                return n, line
    return None, log.splitlines()[-1] if log else "no output"


def query(client, name, feeds, out_names):
    import tritonclient.http as httpclient
    from tritonclient.utils import np_to_triton_dtype

    inputs = []
    for k, v in feeds.items():
        dt = "BYTES" if v.dtype == object else np_to_triton_dtype(v.dtype)
        inp = httpclient.InferInput(k, list(v.shape), dt)
        inp.set_data_from_numpy(v, binary_data=True)
        inputs.append(inp)
    outputs = [httpclient.InferRequestedOutput(o, binary_data=True) for o in out_names]
    res = client.infer(name, inputs, outputs=outputs)
    return {o: res.as_numpy(o) for o in out_names}


def compare(label, values, what, got, ops=()):
    """Returns (ok, detail)."""
    outs = list(got.values())
    detail = []
    ok = True
    if label is not None:
        labels = [o for o in outs if o.dtype == object or np.issubdtype(o.dtype, np.integer)]
        if not labels:
            return False, "no label output"
        g = labels[0].ravel()
        if g.dtype == object:
            g = np.array([x.decode() if isinstance(x, bytes) else x for x in g], dtype=object)
        want = np.asarray(label).ravel()
        same = np.array_equal(g.astype(want.dtype) if want.dtype != object else g, want)
        ok &= bool(same)
        detail.append("labels equal" if same else f"labels differ at {int(np.sum(g != want))} rows")
    floats = [o for o in outs if np.issubdtype(o.dtype, np.floating)]
    if not floats:
        return False, "no float output"
    g = floats[0].astype(np.float64)
    want = np.asarray(values, dtype=np.float64)
    if want.ndim == 1:
        want = want.reshape(len(want), -1)
    if g.shape != want.shape and want.shape[1] == 1 and g.shape[1] == 2:
        # Binary decision values in two columns: skl2onnx relies on the
        # SVMClassifier layout [d, -d] (ONNX Runtime's too), so scikit-learn's
        # decision value is column 0; its linear models (SGDClassifier,
        # Perceptron) concatenate [-d, d], so it is column 1 there.
        column = 0 if "ai.onnx.ml.SVMClassifier" in ops else 1
        g = g[:, column : column + 1]
    if g.shape != want.shape:
        return False, f"{what}: shape {g.shape} vs scikit-learn's {want.shape}"
    err = np.abs(g - want)
    rel = err / np.maximum(np.abs(want), 1e-300)
    big = np.abs(want) > ATOL / RTOL
    max_rel = float(rel[big].max()) if big.any() else 0.0
    close = bool(np.all(err <= ATOL + RTOL * np.abs(want)))
    ok &= close
    detail.append(f"{what}: max abs err {err.max():.2e}, max rel err {max_rel:.2e}" + ("" if close else " (OUT OF TOLERANCE)"))
    return ok, "; ".join(detail)


# Known gaps, each with the status it must still show and why. They are
# printed as KNOWN GAP, not as passing; one that starts passing (or fails
# differently) fails the run, so this list cannot go stale. Empty: every
# model in the zoo is served as scikit-learn computes it.
KNOWN_GAPS: dict[str, tuple[str, str]] = {}

# Float32 models whose converted graph itself is further than RTOL from
# scikit-learn (which computes in double): no runtime can do better than the
# file. For these the oracle is onnxruntime on the same file and inputs:
# warden must match it within RTOL, labels must equal scikit-learn's, and
# the distance to scikit-learn is printed. One that matches scikit-learn
# outright fails the run (take it off the list). Each has a double twin
# in the zoo that matches scikit-learn exactly.
FLOAT32_BOUND = {
    "binarizer_bernoulli_nb_digits": (
        "the float32 graph computes log-probabilities of 64 pixels in float32 and exponentiates their "
        "difference: about 3e-5 relative from scikit-learn in any runtime; binarizer_bernoulli_nb_f64_digits is exact"
    ),
}


def onnxruntime_values(model_bytes, feeds, out_names):
    """onnxruntime's answers on the same file and inputs (one thread)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    return dict(zip(out_names, sess.run(out_names, feeds)))


def float32_bound(sklearn_ok, sklearn_detail, versus_ort):
    """The result of a FLOAT32_BOUND case (see there)."""
    ort_ok, ort_detail = versus_ort
    if sklearn_ok:
        return "FIXED?", f"listed in FLOAT32_BOUND but matches scikit-learn: take it off. {sklearn_detail}"
    if not ort_ok:
        return "MISMATCH", f"versus onnxruntime on the same file: {ort_detail}; versus scikit-learn: {sklearn_detail}"
    return "ok (float32)", f"versus onnxruntime on the same file: {ort_detail}; versus scikit-learn (float32 graph): {sklearn_detail}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warden", default=str(REPO / "target" / "debug" / "warden"))
    ap.add_argument("--keep", help="write the model repository here and keep it")
    ap.add_argument("-k", default="", help="only models whose name contains this")
    args = ap.parse_args()

    import tritonclient.http as httpclient

    repo = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="warden-zoo-"))
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    cases = {}
    results = {}
    references = {}
    for name, data, factory in ZOO:
        if args.k not in name:
            continue
        Xtr, ytr, Xte, yte = data_for(data)
        mixed_input = data.startswith("mixed:")
        model = factory().fit(Xtr, ytr)
        try:
            onx = convert(model, Xtr, mixed_input)
        except Exception as e:  # noqa: BLE001
            results[name] = ("NOT CONVERTIBLE", f"skl2onnx: {type(e).__name__}: {e}")
            continue
        ops = sorted({f"{n.domain + '.' if n.domain else ''}{n.op_type}" for n in onx.graph.node})
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").write_bytes(onx.SerializeToString())
        feeds = mixed_inputs(Xte) if mixed_input else {onx.graph.input[0].name: Xte if Xte.dtype == np.float64 else Xte.astype(np.float32)}
        label, values, what = expected(model, Xte)
        cases[name] = (feeds, [o.name for o in onx.graph.output], label, values, what, ops)
        if name in FLOAT32_BOUND:
            ort_out = onnxruntime_values(onx.SerializeToString(), feeds, cases[name][1])
            floats = [v for v in ort_out.values() if np.issubdtype(v.dtype, np.floating)]
            references[name] = floats[0] if floats else None

    # Start warden; a model it refuses is recorded with the message and
    # moved out, and warden restarted on the rest.
    refused_dir = Path(tempfile.mkdtemp(prefix="warden-zoo-refused-"))
    while True:
        names = [n for n in cases if n not in results]
        if not names:
            break
        w = Warden(args.warden, repo)
        if w.wait():
            break
        log = w.stop()
        bad, line = failing_model(log, names)
        if bad is None:
            print(log, file=sys.stderr)
            sys.exit("warden did not start and the log names no zoo model")
        results[bad] = ("REFUSED AT LOAD", line)
        shutil.move(str(repo / bad), str(refused_dir / bad))

    if any(n not in results for n in cases):
        client = httpclient.InferenceServerClient(w.address)
        try:
            for name, (feeds, out_names, label, values, what, _) in cases.items():
                if name in results:
                    continue
                try:
                    got = query(client, name, feeds, out_names)
                    ok, detail = compare(label, values, what, got, cases[name][5])
                    if name in FLOAT32_BOUND:
                        results[name] = float32_bound(ok, detail, compare(label, references[name], what, got, cases[name][5]))
                    else:
                        results[name] = ("ok" if ok else "MISMATCH", detail)
                except Exception as e:  # noqa: BLE001
                    results[name] = ("INFER FAILED", f"{type(e).__name__}: {e}")
        finally:
            w.stop()

    # ZipMap: a classifier exported with it must be refused at start-up.
    zip_repo = Path(tempfile.mkdtemp(prefix="warden-zoo-zipmap-"))
    Xtr, ytr, _, _ = load("iris")
    clf = LogisticRegression(max_iter=1000).fit(Xtr, ytr)
    (zip_repo / "with_zipmap" / "1").mkdir(parents=True)
    (zip_repo / "with_zipmap" / "1" / "model.onnx").write_bytes(to_onnx(clf, Xtr[:1]).SerializeToString())
    w = Warden(args.warden, zip_repo)
    started = w.wait(120)
    log = w.stop()
    zip_ok = not started and "ZipMap" in log and '"zipmap": False' in log.replace('\\"', '"')
    zip_line = next((ln for ln in reversed(log.splitlines()) if "ZipMap" in ln), log.splitlines()[-1] if log else "")

    width = max(len(n) for n in results) if results else 10
    failed = 0
    known = 0
    f32 = 0
    for name in (n for n, _, _ in ZOO if n in results):
        status, detail = results[name]
        gap = KNOWN_GAPS.get(name)
        if status != "ok" and gap and gap[0] == status:
            known += 1
            detail = f"KNOWN GAP ({gap[1]}): {detail}"
        elif status == "ok" and gap:
            failed += 1
            status = "FIXED?"
            detail = f"listed as a known gap but now matches: remove it from KNOWN_GAPS. {detail}"
        else:
            failed += not status.startswith("ok")
            f32 += status == "ok (float32)"
        ops = ", ".join(o for o in cases[name][5] if o.startswith("ai.onnx.ml.")) if name in cases else ""
        print(f"{name:<{width}}  {status:<16} {detail}" + (f"  [{ops}]" if ops else ""))
    print(f"zipmap refused at start-up: {'ok' if zip_ok else 'FAILED'}: {zip_line[:400]}")
    print(f"{len(results) - failed - known - f32}/{len(results)} models match scikit-learn (rtol {RTOL}, atol {ATOL}); "
          f"{f32} float32-bound (match onnxruntime on the same file, listed above); "
          f"{known} known gaps; {failed} unexpected failures")
    if not args.keep:
        shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(refused_dir, ignore_errors=True)
    shutil.rmtree(zip_repo, ignore_errors=True)
    sys.exit(0 if failed == 0 and zip_ok else 1)


if __name__ == "__main__":
    main()
