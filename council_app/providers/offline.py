"""A provider that needs no network or API key, for demos, development and tests.

Output is deterministic (seeded from a hash of the messages) yet varies with the question,
persona and uploaded context, and it follows the formats the workflow prompts ask for, so
a whole council run works end to end offline.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from .base import Completion, OnDelta, ProviderCancelled, ProviderError, estimate_tokens


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS = _words(
    """a about above after again against all also am an and any are as at be because been
    before being below best better between both but by can could did do does doing done down
    during each either few for from further get getting give good had has have having he her
    here hers how i if in into is it its itself just know like make many may me might more
    most much must my need new no nor not now of off on once only or other our ours out over
    own please really same she should so some such than that the their them then there these
    they thing things this those through to too under until up use using very want was way we
    well were what when where which while who whom why will with without would you your yours
    think best way ways should whether able going lot"""
)

_VERBS = _words(
    """add adopt avoid begin build buy change choose consider cut decide deal drop expand find
    fix go handle improve increase invest keep launch lower manage migrate move pick plan
    prepare raise reduce replace rewrite run scale sell ship spend start stay stop switch take
    try turn"""
)

_DOMAINS: dict[str, frozenset[str]] = {
    "tech": _words(
        "software code api database server cloud migrate migration microservices monolith "
        "python javascript architecture deploy deployment kubernetes security latency data "
        "scale scaling app application backend frontend infrastructure ai model llm"
    ),
    "business": _words(
        "market pricing price revenue startup customers customer strategy growth company "
        "business product sales marketing competitors investment budget profit hire hiring "
        "team launch funding"
    ),
    "personal": _words(
        "career job learn learning study health sleep diet exercise habit habits life move "
        "relationship family money savings retire retirement school university degree"
    ),
    "policy": _words(
        "policy law legal regulation government city public climate energy education tax "
        "ethics rights privacy community environment"
    ),
}

# (name, persona template, reasoning effort, web search); {topic} is filled from the question.
_ARCHETYPES: dict[str, list[tuple[str, str, str, bool]]] = {
    "tech": [
        (
            "Systems Architect",
            "You are a systems architect who has designed and rescued large production "
            "systems. You judge {topic} by long-term maintainability, failure modes and the "
            "cost of change, and you draw diagrams in words.",
            "high",
            False,
        ),
        (
            "Security Reviewer",
            "You are a security engineer who assumes every system will be attacked. You look "
            "at {topic} through threat models, data exposure and least privilege.",
            "medium",
            False,
        ),
        (
            "Site Reliability Engineer",
            "You are an SRE who carries the pager. You care about what {topic} means for "
            "observability, incident response and the on-call burden.",
            "medium",
            False,
        ),
    ],
    "business": [
        (
            "Market Strategist",
            "You are a market strategist who has launched products in crowded markets. You "
            "test {topic} against customer demand, positioning and competitors' likely moves.",
            "medium",
            True,
        ),
        (
            "CFO",
            "You are a finance chief. You translate {topic} into cash flow, unit economics and "
            "downside scenarios, and you distrust numbers without sources.",
            "high",
            False,
        ),
        (
            "Customer Advocate",
            "You are the voice of the customer. You ask what {topic} changes for real users "
            "and back your claims with concrete user scenarios.",
            "low",
            False,
        ),
    ],
    "personal": [
        (
            "Life Coach",
            "You are a pragmatic coach who helps people make decisions they can sustain. You "
            "frame {topic} around values, habits and small reversible experiments.",
            "low",
            False,
        ),
        (
            "Behavioural Scientist",
            "You are a behavioural scientist. You look at {topic} through evidence on "
            "motivation, biases and what people actually do rather than what they plan.",
            "medium",
            True,
        ),
        (
            "Financial Planner",
            "You are a fee-only financial planner. You weigh {topic} in terms of money, time "
            "horizons and the safety net needed if things go wrong.",
            "medium",
            False,
        ),
    ],
    "policy": [
        (
            "Policy Analyst",
            "You are a public-policy analyst. You compare options for {topic} by evidence, "
            "costs, who benefits and who pays, citing precedents from other places.",
            "high",
            True,
        ),
        (
            "Legal Counsel",
            "You are a cautious lawyer. You identify the legal and compliance exposure in "
            "{topic} and the safest route that still achieves the goal.",
            "medium",
            False,
        ),
        (
            "Community Representative",
            "You are a community organiser who speaks for the people affected. You judge "
            "{topic} by fairness, trust and how "
            "it will feel on the ground.",
            "low",
            False,
        ),
    ],
}

_GENERALISTS: list[tuple[str, str, str, bool]] = [
    (
        "Devil's Advocate",
        "You are a professional sceptic. You attack the most popular answer to {topic}, "
        "surface hidden assumptions and argue for the option everyone else dismisses.",
        "high",
        False,
    ),
    (
        "Pragmatic Operator",
        "You are an operator who has shipped under deadlines. You turn {topic} into the "
        "smallest plan that works this quarter, with owners and checkpoints.",
        "low",
        False,
    ),
    (
        "Research Analyst",
        "You are a research analyst. You gather the best available evidence on {topic}, say "
        "how strong it is and separate facts from opinion.",
        "medium",
        True,
    ),
    (
        "Risk Manager",
        "You are a risk manager. You list what could go wrong with {topic}, how likely and how "
        "bad each failure is, and which mitigations are cheap.",
        "medium",
        False,
    ),
    (
        "Futurist",
        "You are a futurist who thinks in five-to-ten-year horizons. You ask how {topic} looks "
        "once today's trends play out and which choices keep options open.",
        "low",
        True,
    ),
]

_SCORE_WEIGHTS = (1, 3, 5, 6, 4)  # scores 1..5: mostly 3-4, occasionally extreme


FAIL_MARKER = "[offline-fail]"
_STREAM_CHUNKS = 8
_SIMULATED_URLS = ("https://example.com/search-result-1", "https://example.com/search-result-2")


class OfflineProvider:
    """Deterministic stand-in for an LLM; shapes its output by ``task``.

    ``fail_members`` (``OFFLINE_FAIL_MEMBERS``) names members whose calls fail on purpose,
    as does ``[offline-fail]`` in a member's name or persona, so failure paths can be shown
    without a real provider.  Text is streamed to ``on_delta`` in a few chunks, the
    simulated latency spread between them, and ``cancel`` is honoured between chunks.
    """

    name = "offline"

    def __init__(self, latency_ms: int = 0, fail_members: frozenset[str] = frozenset()) -> None:
        self.latency_ms = max(0, int(latency_ms))
        self.fail_members = frozenset(n.strip().casefold() for n in fail_members if n.strip())

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        model: str,
        task: str,
        reasoning_effort: str | None = None,
        json_mode: bool = False,
        web_search: bool = False,
        on_delta: OnDelta | None = None,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> Completion:
        """Produce the canned-but-plausible output for ``task`` after the simulated latency."""
        started = time.perf_counter()
        prompt = _Prompt(messages, task)
        if self._fails(prompt):
            raise ProviderError(
                f"offline provider: member {prompt.agent_name!r} fails on purpose "
                "(OFFLINE_FAIL_MEMBERS or [offline-fail] in its name or persona)"
            )
        writer = {
            "build": _build,
            "review": _review,
            "synthesize": _synthesize,
        }.get(task, _execute)
        text = writer(prompt)
        self._stream(text, on_delta, cancel, deadline)
        tools_used: list[dict[str, Any]] = []
        citations: list[dict[str, str]] = []
        if web_search and task in ("execute", "review"):
            tools_used.append(
                {
                    "tool": "web_search",
                    "query": _short(prompt.question, 80),
                    "urls": list(_SIMULATED_URLS),
                    "simulated": True,
                }
            )
            citations = [{"url": u, "title": "Simulated result"} for u in _SIMULATED_URLS]
        return Completion(
            text=text,
            model=model,
            provider=self.name,
            input_tokens=sum(estimate_tokens(m.get("content") or "") for m in messages),
            output_tokens=estimate_tokens(text),
            duration_ms=(time.perf_counter() - started) * 1000,
            tools_used=tools_used,
            citations=citations,
        )

    def _fails(self, prompt: _Prompt) -> bool:
        name = prompt.agent_name.casefold()
        if name in self.fail_members:
            return True
        return FAIL_MARKER in name or FAIL_MARKER in prompt.system.casefold()

    def _stream(
        self,
        text: str,
        on_delta: OnDelta | None,
        cancel: threading.Event | None,
        deadline: float | None,
    ) -> None:
        """Wait the simulated latency in slices, handing out the text as it "arrives"."""
        chunks = _STREAM_CHUNKS if (on_delta or self.latency_ms) else 1
        pause = self.latency_ms / 1000 / chunks
        size = max(1, -(-len(text) // chunks))
        for i in range(chunks):
            if (cancel is not None and cancel.wait(pause)) or (cancel is None and _sleep(pause)):
                raise ProviderCancelled("offline provider: cancelled")
            if deadline is not None and time.monotonic() > deadline:
                raise ProviderCancelled("offline provider: deadline passed")
            if on_delta is not None:
                on_delta(text[: size * (i + 1)])


def _sleep(seconds: float) -> bool:
    if seconds > 0:
        time.sleep(seconds)
    return False


class _Prompt:
    """What the offline writer can glean from the messages built by ``workflow.prompts``."""

    def __init__(self, messages: Sequence[dict[str, str]], task: str) -> None:
        self.system = "\n".join(
            m.get("content") or "" for m in messages if m.get("role") == "system"
        )
        self.user = "\n".join(m.get("content") or "" for m in messages if m.get("role") != "system")
        payload = json.dumps([task, list(messages)], sort_keys=True, ensure_ascii=False)
        self.seed = int.from_bytes(hashlib.sha256(payload.encode("utf-8")).digest()[:8], "big")
        self.rng = random.Random(self.seed)
        self.question = _tag(self.user, "question") or _first_line(self.user) or "the question"
        self.context = _tag(self.user, "context")
        name = re.search(r'You are speaking as "([^"]+)"', self.system)
        self.agent_name = name.group(1) if name else "Council member"
        persona = re.split(r'\n*You are speaking as "', self.system)[0].strip()
        self.persona = persona
        self.keywords = _keywords(self.question) or ["the goal", "the constraints", "the options"]

    @property
    def topic(self) -> str:
        return _join(self.keywords[:2])

    def pick(self, options: Sequence[str]) -> str:
        return options[self.rng.randrange(len(options))]


def _build(p: _Prompt) -> str:
    domains = _domains(p.question + " " + p.context)
    pool = [a for d in domains for a in _ARCHETYPES[d]]
    size = 3 + p.seed % 3  # 3..5 agents
    specialists = p.rng.sample(pool, min(len(pool), max(1, size - 2)))
    generalists = p.rng.sample(_GENERALISTS, size - len(specialists))
    agents = [
        {
            "name": name,
            "persona": persona.format(topic=p.topic),
            "reasoning_effort": effort,
            "enable_web_search": web,
        }
        for name, persona, effort, web in specialists + generalists
    ]
    council = {
        "council_name": f"{p.keywords[0].title()} Council",
        "strategy_summary": (
            f"Pairs {_join([str(a['name']) for a in agents[: len(specialists)]])} for depth "
            f"on {p.topic} with {_join([str(a['name']) for a in agents[len(specialists) :]])} to "
            "challenge assumptions and keep the answer actionable."
        ),
        "agents": agents,
    }
    return json.dumps(council, indent=2, ensure_ascii=False)


def _execute(p: _Prompt) -> str:
    kw = [*p.keywords, "trade-offs", "timing", "evidence"]
    role = _role(p.persona)
    opening = p.pick(
        [
            f"Speaking as {role}, I think *{_short(p.question)}* turns on {kw[0]} more than "
            f"on anything else.",
            f'My view as {role}: the honest answer to *{_short(p.question)}* is "it depends" '
            f"until we pin down {kw[0]} and {kw[1]}.",
            f"As {role}, I would start from {kw[0]}: get that right and most of "
            f"*{_short(p.question)}* answers itself.",
        ]
    )
    stance = p.pick(["cautiously in favour", "in favour, with conditions", "sceptical for now"])
    templates = [
        "decide explicitly how much {w} matters before comparing options.",
        "the options differ most on {w}; measure it rather than guess.",
        "this is where plans like this usually fail, so budget time for {w}.",
        "a small, reversible experiment on {w} would settle most of the debate.",
        "ask who owns {w} today and who will own it afterwards.",
    ]
    considerations = [
        f"- **{w.capitalize()}**: " + t.format(w=w)
        for w, t in zip(kw[:3], p.rng.sample(templates, 3), strict=True)
    ]
    parts = [
        f"## {p.agent_name}: {_short(p.question)}",
        opening,
        f"Overall I am **{stance}**. "
        + p.pick(
            [
                "The upside is real, but only if the basics are in place first.",
                "The downside is bounded if we move in stages and keep an exit.",
                "Most of the risk comes from doing everything at once.",
            ]
        ),
        "### Key considerations",
        "\n".join(considerations),
    ]
    if p.context:
        parts += [
            "### What the uploaded material says",
            f"> {_short(_first_sentence(p.context), 200)}",
            "This supports a measured approach: "
            + p.pick(
                [
                    "the documents describe constraints that rule out the most aggressive option.",
                    "the documents give a baseline we can measure progress against.",
                    "the documents leave gaps we should close before committing.",
                ]
            ),
        ]
    parts += [
        "### Recommendation",
        f"1. Clarify the goal and the success metric for {kw[0]}.\n"
        f"2. Run a time-boxed pilot focused on {kw[1]}.\n"
        f"3. Review the results against {kw[2]} and decide to scale, adjust or stop.",
        "### Risks and caveats",
        f"- {p.pick(['Hidden costs', 'Optimism bias', 'Loss of focus'])} around {kw[1]}.\n"
        f"- {p.pick(['Stakeholder pushback', 'Skill gaps', 'Dependence on one person'])} "
        "slowing the pilot.",
        f"TL;DR: {stance.capitalize()}: start with a small pilot on {kw[0]}, measure it, "
        "and only then commit.",
    ]
    return "\n\n".join(parts)


def _review(p: _Prompt) -> str:
    ids = list(dict.fromkeys(int(i) for i in re.findall(r"PROPOSAL #(\d+)", p.user)))
    entries: list[dict[str, Any]] = []
    for pid in ids:
        body = _proposal_body(p.user, pid)
        # Quality depends on the proposal alone, so reviewers roughly agree; noise on top
        # depends on the reviewer too.
        quality = random.Random(f"quality:{pid}:{body}").choices(range(1, 6), _SCORE_WEIGHTS)[0]
        rng = random.Random(f"{p.seed}:{pid}:{body}")
        score = min(5, max(1, quality + rng.choice((-1, 0, 0, 0, 1))))
        topics = [w for w in p.keywords if w in body.lower()] or p.keywords
        focus = topics[rng.randrange(min(3, len(topics)))]
        entries.append(
            {
                "proposal_id": pid,
                "score": score,
                "strengths": rng.choice(
                    [
                        f"Clear structure and a concrete plan for {focus}.",
                        f"Grounds its argument about {focus} in specifics.",
                        f"Honest about trade-offs around {focus}.",
                    ]
                ),
                "weaknesses": rng.choice(
                    [
                        "Some claims are asserted rather than supported.",
                        "Recommendations are generic in places.",
                        "Spends too long on background before the answer.",
                    ]
                ),
                "gaps_risks": rng.choice(
                    [
                        "Does not say how success will be measured.",
                        "Ignores the cost of reversing the decision.",
                        "Little on who is affected and how they will react.",
                    ]
                ),
                "tldr": f"{['Weak', 'Thin', 'Solid', 'Strong', 'Excellent'][score - 1]} "
                f"answer on {focus}.",
            }
        )
    ranking = [
        e["proposal_id"] for e in sorted(entries, key=lambda e: (-e["score"], e["proposal_id"]))
    ]
    best = f"PROPOSAL #{ranking[0]}" if ranking else "none of the proposals"
    review = {
        "overall_tldr": f"{best} gives the most usable answer on {p.topic}.",
        "per_proposal": entries,
        "overall_ranking": ranking,
    }
    return json.dumps(review, indent=2, ensure_ascii=False)


def _synthesize(p: _Prompt) -> str:
    names = dict(re.findall(r"=== PROPOSAL #(\d+) — (.+?) ===", p.user))
    means = {
        pid: float(mean)
        for pid, mean in re.findall(r"- PROPOSAL #(\d+) \(.*?\): average ([\d.]+)", p.user)
    }
    order = sorted(names, key=lambda pid: (-means.get(pid, 0.0), int(pid)))
    lead = names[order[0]] if order else "the council"
    lead_tldr = _section_tldr(p.user, order[0]) if order else ""
    others = [names[pid] for pid in order[1:]]
    table = "\n".join(
        f"| #{pid} | {names[pid]} | {f'{means[pid]:.2f}' if pid in means else 'n/a'} |"
        for pid in order
    )
    parts = [
        "## Verdict",
        f"On *{_short(p.question)}*, the council leans towards the position of **{lead}**"
        + (f": {lead_tldr}" if lead_tldr else ".")
        + " "
        + p.pick(
            [
                "The peer reviews consistently rated it the most actionable.",
                "It balanced ambition and risk better than the alternatives.",
                "It was the only answer with a clear way to measure success.",
            ]
        ),
        "## Where the council agreed",
        f"- {p.topic.capitalize()} is the crux of the decision.\n"
        "- A staged approach beats a big-bang commitment.",
        "## Disagreements and how you resolved them",
        (
            f"- {_join(others)} weighed the risks differently; "
            + p.pick(
                [
                    "their concerns are folded into the risk list below.",
                    "the verdict keeps their safeguards as preconditions.",
                ]
            )
            if others
            else "- Only one proposal was available, so there was nothing to reconcile."
        ),
        "## Recommended next steps",
        f"1. Agree a success metric for {p.keywords[0]}.\n"
        "2. Run a short pilot and review it with the whole council.\n"
        "3. Decide to scale, adjust or stop based on the evidence.",
        "## Risks and open questions",
        "- Scores came from a small number of reviewers.\n- "
        + p.pick(["Costs may be underestimated.", "Timelines may slip.", "Key data is missing."]),
    ]
    if table:
        parts += ["| Proposal | Member | Average score |\n|---|---|---|\n" + table]
    parts.append(f"TL;DR: Follow {lead}'s approach, starting with a measured pilot on {p.topic}.")
    return "\n\n".join(parts)


def _tag(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>\n?(.*?)\n?</{tag}>", text, re.DOTALL)
    return match.group(1).strip() if match else ""


def _proposal_body(text: str, pid: int) -> str:
    match = re.search(
        rf"=== PROPOSAL #{pid}\b[^\n]*===\n(.*?)\n=== END OF PROPOSAL #{pid} ===", text, re.DOTALL
    )
    return match.group(1) if match else ""


def _section_tldr(text: str, pid: str) -> str:
    lines = re.findall(r"^TL;DR:\s*(.+)$", _proposal_body(text, int(pid)), re.MULTILINE)
    return lines[-1].strip() if lines else ""


def _keywords(text: str, limit: int = 6) -> list[str]:
    """Likely topic words: no stopwords, verbs last, longer (more specific) words first."""
    words = re.findall(r"[A-Za-z][A-Za-z0-9'-]{3,}", text.lower())
    unique = dict.fromkeys(w.strip("'-") for w in words if w not in _STOPWORDS)
    ranked = sorted(unique, key=lambda w: (w in _VERBS or w.endswith("ing"), -len(w)))
    return ranked[:limit]


def _domains(text: str) -> list[str]:
    words = set(re.findall(r"[a-z]+", text.lower()))
    hits = {d: len(words & vocab) for d, vocab in _DOMAINS.items()}
    ranked = [d for d, n in sorted(hits.items(), key=lambda kv: -kv[1]) if n]
    return ranked[:2] or ["business", "tech"]


def _role(persona: str) -> str:
    match = re.search(r"You are ((?:an?|the) [^.,;]+)", persona)
    return match.group(1) if match else "a member of this council"


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s|$)", flat)
    return match.group(1) if match else flat
