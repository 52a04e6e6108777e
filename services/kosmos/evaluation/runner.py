"""Offline evaluation through the code the service runs.

Each recommender is built by its entry-point factory from its settings and fitted on
`kosmos.plugin.TrainingData`, as the service's model hub does. Each test customer then gets the
`RecommendQuery` the service would build: their latest interactions newest first (up to
``KOSMOS_RECENT_INTERACTIONS``, 25), their dismissals excluded, their profile features, and
``filter_already_seen`` when the split tests only items new to the customer. A routed chain runs
through `kosmos.plugin.routing.run_chain` with the segment the service would pick (warm: the
customer has history). Every recommender answers each customer once; chains reuse the answers,
which is exact because the service asks every recommender of a chain the same query.

Queries ask for ``k`` items. The service asks for more (``2 × page + 10``) and then filters, but
a recommender's first ``k`` are the same either way, and so are a chain's. What the service does
after the chain (stock, a customer's own exclusions, variety per category) needs the live
catalog and is not scored here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kosmos.evaluation.datasets import Dataset
from kosmos.evaluation.metrics import catalog_coverage, ndcg_at_k, precision_at_k, recall_at_k
from kosmos.evaluation.served import ServedPath
from kosmos.evaluation.split import Split
from kosmos.plugin import (
    Interaction,
    InteractionType,
    LoadedPlugin,
    Recommender,
    RecommendQuery,
    Scored,
    TrainingData,
)
from kosmos.plugin.routing import Routing, run_chain
from kosmos.recommendation.seen import SeenPolicy

__all__ = [
    "POPULATIONS",
    "RECENT_INTERACTIONS",
    "Evaluation",
    "Result",
    "Scores",
    "build_queries",
    "evaluate",
    "markdown_table",
    "results_table",
    "score",
    "served_table",
    "training_data",
]

RECENT_INTERACTIONS = 25
"""How many latest interactions a query carries: the service's ``KOSMOS_RECENT_INTERACTIONS``."""

POPULATIONS = ("all", "warm", "cold")
"""Every test customer; those with training history; those without."""


@dataclass(frozen=True, slots=True)
class Scores:
    """Mean metrics over one population of test customers (coverage is over the catalog)."""

    customers: int
    precision: float
    recall: float
    ndcg: float
    coverage: float


@dataclass(frozen=True, slots=True)
class Result:
    """How one recommender, chain or baseline did.

    Attributes:
        name: What was evaluated: a recommender's name, ``routed <routing>``, a baseline's.
        scores: Population (``all``, ``warm``, ``cold``) → scores.
        fit_seconds: Wall time to fit (a chain: its recommenders together).
        recommend_us: Mean wall time per customer to answer, microseconds; NaN if not timed.
        failures: Customers for whom a recommender raised (the chain moved on, as in service).
        first_failure: The first such error, for people.
    """

    name: str
    scores: Mapping[str, Scores]
    fit_seconds: float
    recommend_us: float = math.nan
    failures: int = 0
    first_failure: str = ""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One run: the data, the split and every result, recommenders first, then chains."""

    dataset: Dataset
    split: Split
    k: int
    results: list[Result] = field(default_factory=list)


def training_data(dataset: Dataset, split: Split) -> TrainingData:
    """What every recommender fits on: the split's training interactions and the whole catalog
    and profiles, as the service's store would hold them at the split's ``now``."""
    return TrainingData(
        interactions=split.train,
        item_ids=dataset.item_ids,
        customer_features=dataset.customer_features,
        item_features=dataset.item_features,
        now=split.now,
        shop_id=dataset.name,  # a remote plugin keeps one model per shop
    )


def build_queries(
    dataset: Dataset, split: Split, k: int, recent: int = RECENT_INTERACTIONS
) -> dict[str, RecommendQuery]:
    """The query the service would send for each test customer, in a stable order."""
    history: dict[str, list[Interaction]] = {c: [] for c in split.test}
    for i in split.train:
        rows = history.get(i.customer_id)
        if rows is not None:
            rows.append(i)
    queries = {}
    for customer in sorted(split.test):
        rows = history[customer]
        queries[customer] = RecommendQuery(
            customer_id=customer,
            k=k,
            exclude_item_ids=frozenset(
                i.item_id for i in rows if i.type is InteractionType.DISMISS
            ),
            filter_already_seen=split.new_items_only,
            reasons=False,  # metrics read rankings only
            recent_interactions=tuple(reversed(rows[-recent:])) if recent > 0 else (),
            customer_features=dataset.customer_features.get(customer, {}),
        )
    return queries


def score(
    name: str,
    rankings: Mapping[str, Sequence[str]],
    split: Split,
    catalog_size: int,
    k: int,
    fit_seconds: float,
    recommend_us: float = math.nan,
    failures: int = 0,
    first_failure: str = "",
) -> Result:
    """Scores rankings (customer → item ids, best first) against the split's test sets.

    A test customer missing from ``rankings`` got nothing, and scores 0.
    """
    groups = {"all": sorted(split.test), "warm": sorted(split.warm), "cold": sorted(split.cold)}
    scores = {}
    for population, customers in groups.items():
        ranked = [list(rankings.get(c, ()))[:k] for c in customers]
        relevant = [split.test[c] for c in customers]
        scores[population] = Scores(
            customers=len(customers),
            precision=_mean(precision_at_k, ranked, relevant, k),
            recall=_mean(recall_at_k, ranked, relevant, k),
            ndcg=_mean(ndcg_at_k, ranked, relevant, k),
            coverage=catalog_coverage(ranked, catalog_size, k) if customers else math.nan,
        )
    return Result(name, scores, fit_seconds, recommend_us, failures, first_failure)


def _mean(
    metric: Callable[[Sequence[str], frozenset[str], int], float],
    ranked: Sequence[Sequence[str]],
    relevant: Sequence[frozenset[str]],
    k: int,
) -> float:
    if not ranked:
        return math.nan
    return sum(metric(r, rel, k) for r, rel in zip(ranked, relevant, strict=True)) / len(ranked)


@dataclass(slots=True)
class _Answers:
    """One recommender's answer to every test customer (None where it raised), and timings."""

    scored: dict[str, list[Scored] | None]
    nanos: dict[str, int]
    failures: int = 0
    first_failure: str = ""


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=console is None,
    )


def _answer(
    model: Recommender, queries: Mapping[str, RecommendQuery], tick: Callable[[], None]
) -> _Answers:
    answers = _Answers({}, {})
    for customer, query in queries.items():
        started = time.perf_counter_ns()
        try:
            answers.scored[customer] = model.recommend(query)
        except Exception as exc:  # the service's chain skips a failing recommender; so do we
            answers.scored[customer] = None
            answers.failures += 1
            answers.first_failure = answers.first_failure or f"{type(exc).__name__}: {exc}"
        answers.nanos[customer] = time.perf_counter_ns() - started
        tick()
    return answers


def _asker(
    answers: Mapping[str, _Answers], customer: str, asked: list[str]
) -> Callable[[str], list[Scored] | None]:
    """What `run_chain` calls: a recommender's stored answer to this customer; records who was
    asked, so a chain is charged the time of exactly the recommenders it ran."""

    def ask(recommender: str) -> list[Scored] | None:
        asked.append(recommender)
        return answers[recommender].scored[customer]

    return ask


def _run(
    name: str,
    routing: Routing,
    answers: Mapping[str, _Answers],
    split: Split,
    queries: Mapping[str, RecommendQuery],
    catalog_size: int,
    k: int,
    fit_seconds: float,
) -> Result:
    rankings: dict[str, list[str]] = {}
    nanos = 0
    failures = 0
    first = ""
    for customer in queries:
        asked: list[str] = []
        chain = routing.chain(has_history=customer in split.warm)
        candidates = run_chain(chain, _asker(answers, customer, asked), k)
        rankings[customer] = [c.scored.item_id for c in candidates[:k]]
        for recommender in asked:
            nanos += answers[recommender].nanos[customer]
            if answers[recommender].scored[customer] is None:
                failures += 1
                first = first or answers[recommender].first_failure
    per_customer = nanos / len(queries) / 1000.0 if queries else math.nan
    return score(name, rankings, split, catalog_size, k, fit_seconds, per_customer, failures, first)


def evaluate(
    dataset: Dataset,
    split: Split,
    plugins: Mapping[str, LoadedPlugin],
    recommenders: Sequence[str],
    routings: Iterable[Routing] = (),
    settings: Mapping[str, Mapping[str, str]] | None = None,
    k: int = 10,
    recent: int = RECENT_INTERACTIONS,
    console: Console | None = None,
    served: SeenPolicy | None = None,
    max_per_category: int = 3,
) -> Evaluation:
    """Fits each recommender through its plugin factory and scores it, then each routed chain.

    With ``served`` (the shop's seen-item policy), every recommender and chain is scored a
    second time through the served path (`kosmos.evaluation.served`), as ``served <name>``.

    Args:
        dataset: The data: catalog, features, interactions.
        split: What to train on and what to find.
        plugins: Loaded plugins (`kosmos.plugin.discover`), by name.
        recommenders: The recommenders to score on their own, in order.
        routings: Chains to score; the recommenders they route to are fitted too.
        settings: Recommender name → setting → value (strings, as the service reads them).
        k: How many items each customer is recommended.
        recent: How many latest interactions each query carries.
        console: Where progress bars go; None for none.
        served: The seen-item policy of the served path; None skips it.
        max_per_category: The served path's variety cap (``KOSMOS_MAX_PER_CATEGORY``).

    Raises:
        ValueError: A recommender is not among ``plugins``, or a setting names one not fitted.
    """
    routings = list(routings)
    settings = settings or {}
    names = list(dict.fromkeys([*recommenders, *(n for r in routings for n in r.names)]))
    missing = [n for n in names if n not in plugins]
    if missing:
        raise ValueError(
            f"no recommender plugin named {', '.join(map(repr, missing))} is installed "
            f"(installed: {', '.join(sorted(plugins)) or 'none'})"
        )
    stray = sorted(set(settings) - set(names))
    if stray:
        raise ValueError(f"settings given for {', '.join(stray)}, which is not evaluated")
    data = training_data(dataset, split)
    queries = build_queries(dataset, split, k, recent)
    catalog_size = max(len(dataset.item_ids), 1)
    evaluation = Evaluation(dataset, split, k)
    answers: dict[str, _Answers] = {}
    fit_seconds: dict[str, float] = {}
    models: dict[str, Recommender] = {}
    with _progress(console) as progress:
        for name in names:
            model = plugins[name].factory(settings.get(name, {}))
            task = progress.add_task(f"fitting {name}", total=None)
            started = time.perf_counter()
            model.fit(data)
            fit_seconds[name] = time.perf_counter() - started
            models[name] = model
            progress.update(task, description=f"{name}: recommending", total=len(queries))
            answers[name] = _answer(model, queries, partial(progress.advance, task))
            progress.remove_task(task)
    for name in recommenders:
        evaluation.results.append(
            _run(
                name,
                Routing((name,), (name,)),
                answers,
                split,
                queries,
                catalog_size,
                k,
                fit_seconds[name],
            )
        )
    for routing in routings:
        evaluation.results.append(
            _run(
                f"routed {routing}",
                routing,
                answers,
                split,
                queries,
                catalog_size,
                k,
                sum(fit_seconds[n] for n in routing.names),
            )
        )
    if served is not None:
        evaluation.results.extend(
            _served(
                dataset,
                split,
                ServedPath(dataset, split, Routing(), served, max_per_category, recent),
                models,
                data,
                recommenders,
                routings,
                k,
                console,
            )
        )
    return evaluation


def _served(
    dataset: Dataset,
    split: Split,
    path: ServedPath,
    models: Mapping[str, Recommender],
    data: TrainingData,
    recommenders: Sequence[str],
    routings: Sequence[Routing],
    k: int,
    console: Console | None,
) -> list[Result]:
    """Every recommender and chain again, through the domain code behind ``Recommend``."""
    results = []
    customers = sorted(split.test)
    catalog_size = max(len(dataset.item_ids), 1)
    chains = [(n, Routing((n,), (n,))) for n in recommenders]
    chains += [(f"routed {r}", r) for r in routings]
    with _progress(console) as progress:
        task = progress.add_task("served path: loading the store", total=None)
        with path:
            path.load(lambda n: progress.advance(task, n))
            for name, routing in chains:
                progress.update(
                    task, description=f"served {name}", total=len(customers), completed=0
                )
                path.routing = routing
                started = time.perf_counter_ns()
                rankings = path.rankings(
                    models, data, customers, k, partial(progress.advance, task)
                )
                nanos = time.perf_counter_ns() - started
                results.append(
                    score(
                        f"served {name}",
                        rankings,
                        split,
                        catalog_size,
                        k,
                        math.nan,  # the very models scored above: no fit of its own
                        nanos / max(len(customers), 1) / 1000.0,
                    )
                )
    return results


def _number(value: float, digits: int = 4) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def _seconds(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.1f}" if value >= 0.05 else f"{value:.2f}"


def _micros(value: float) -> str:
    return "" if math.isnan(value) else f"{value:,.0f}"


def _rows(results: Sequence[Result]) -> Iterable[tuple[Result, str, Scores, bool]]:
    """Each result's populations, with whether its NDCG is the best of that population."""
    best = {
        p: max((r.scores[p].ndcg for r in results if not math.isnan(r.scores[p].ndcg)), default=0)
        for p in POPULATIONS
    }
    for result in results:
        for population in POPULATIONS:
            s = result.scores[population]
            if s.customers:
                yield result, population, s, s.ndcg == best[population] and s.ndcg > 0


def results_table(results: Sequence[Result], k: int, title: str = "") -> Table:
    """A rich table: one row per result and population; the best NDCG per population in bold."""
    table = Table(title=title or None, title_justify="left")
    table.add_column("recommender", overflow="fold")  # a narrow terminal folds names, not figures
    for column in (
        "customers",
        f"P@{k}",
        f"R@{k}",
        f"NDCG@{k}",
        "coverage",
        "fit s",
        "µs/customer",
    ):
        table.add_column(column, justify="right", no_wrap=True)
    previous = None
    for result, population, s, best in _rows(results):
        first = result is not previous
        if first and previous is not None:
            table.add_section()
        previous = result
        label = result.name if population == "all" else f"  {population}"
        ndcg = _number(s.ndcg)
        table.add_row(
            label,
            f"{s.customers:,}",
            _number(s.precision),
            _number(s.recall),
            f"[bold]{ndcg}[/bold]" if best else ndcg,
            _number(s.coverage, 3),
            _seconds(result.fit_seconds) if population == "all" else "",
            _micros(result.recommend_us) if population == "all" else "",
            style=None if population == "all" else "dim",
        )
    return table


def served_table(results: Sequence[Result], k: int) -> Table:
    """Each recommender and chain straight from the plugins beside the same through the served
    path, and the difference: what the service adds (or costs) for shoppers."""
    table = Table(title=f"served path vs plugins, NDCG@{k}", title_justify="left")
    for column in ("recommender", "population", "plugins", "served", "served − plugins"):
        table.add_column(
            column, justify="left" if column in ("recommender", "population") else "right"
        )
    by_name = {r.name: r for r in results}
    for result in results:
        served = by_name.get(f"served {result.name}")
        if served is None:
            continue
        for population in POPULATIONS:
            direct, through = result.scores[population], served.scores[population]
            if not direct.customers:
                continue
            delta = through.ndcg - direct.ndcg
            table.add_row(
                result.name if population == "all" else "",
                population,
                _number(direct.ndcg),
                _number(through.ndcg),
                f"[{'green' if delta >= 0 else 'red'}]{delta:+.4f}[/]",
            )
        table.add_section()
    return table


def markdown_table(results: Sequence[Result], k: int) -> str:
    """The same figures as a Markdown table, for a README."""
    columns = ("customers", f"P@{k}", f"R@{k}", f"NDCG@{k}", "coverage", "fit s", "µs/customer")
    lines = [
        "| recommender | " + " | ".join(columns) + " |",
        "| --- " + "| ---: " * len(columns) + "|",
    ]
    for result, population, s, best in _rows(results):
        name = f"`{result.name}`" if population == "all" else f"↳ {population}"
        ndcg = _number(s.ndcg)
        cells = [
            name,
            f"{s.customers:,}",
            _number(s.precision),
            _number(s.recall),
            f"**{ndcg}**" if best else ndcg,
            _number(s.coverage, 3),
            _seconds(result.fit_seconds) if population == "all" else "",
            _micros(result.recommend_us) if population == "all" else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
