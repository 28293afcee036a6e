"""Pages for the promotion workflow: the approval queue, the review page with one-click
approve/reject, requesting a promotion, and the model card form. Every action calls the same
governance services as the API; the pages only offer what the user may do."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from core import access, refusals
from core.errors import ApplicationError
from governance import approvals
from governance import policy as rules
from governance.models import CARD_FIELDS
from governance.models import TransitionRequest as TR
from governance.selectors import cards as card_selectors
from governance.selectors import requests as request_selectors
from governance.selectors import reviews as review_selectors
from governance.services import cards as card_services
from governance.services import comments as comment_services
from governance.services import requests as request_services
from governance.services import reviews as review_services
from registry import permissions as model_permissions
from registry import selectors as registry_selectors
from registry.models import ModelVersion
from registry.transitions import targets_from
from web import charts
from web.pages import page


def _level(user, mv: ModelVersion) -> str:
    return model_permissions.model_level(user, mv.registered_model_id)


def governance_context(user, mv: ModelVersion) -> dict:
    """What the version page shows about governance and which actions it offers."""
    policy = rules.policy_for(mv.registered_model)
    chain = request_selectors.review_chain(mv)
    card, saved = card_selectors.card_get(mv)
    can_edit = access.RANK[_level(user, mv)] >= access.RANK[access.EDIT] and not (
        access.is_compliance(user) and not access.is_admin(user)
    )
    open_requests = [r for r in chain if r["status"] == TR.Status.OPEN]
    decidable = []
    for item in open_requests:
        req = TR.objects.select_related("version__registered_model", "requested_by").get(
            pk=item["id"]
        )
        if approvals.review_refusal(user, policy, req) is None:
            decidable.append(item["id"])
    return {
        "mv": mv,
        "policy": rules.payload(policy),
        "review_chain": chain,
        "open_requests": open_requests,
        "decidable": decidable,
        "card": card_selectors.card_payload(card, saved),
        "can_edit": can_edit,
        "targets": targets_from(mv.current_stage, was_in_production=mv.was_in_production)
        if can_edit and not mv.deleted
        else [],
    }


@page(access.AUTHENTICATED)
def queue(request):
    user = request.user
    to_review = list(request_selectors.requests_list(user, queue=True)[:200])
    mine = list(request_selectors.requests_list(user, requester=user.get_username())[:50])
    sees_all = access.is_compliance(user) or access.is_admin(user)
    status = request.GET.get("status", "")
    everything = []
    if sees_all:
        # Compliance officers and admins: every request (read-only for compliance), newest
        # first, filtered by status.
        everything = list(request_selectors.requests_list(user, status=status or None)[:200])
    states = request_selectors.queue_states(user, to_review)
    queued = []
    for item in request_selectors.request_payloads(to_review):
        item.update(states[item["id"]])
        queued.append(item)
    # Ready ones first, oldest first within each group: a request that waits longest for
    # this reviewer comes first.
    order = {"ready": 0, "waiting": 1, "blocked": 2}
    queued.sort(key=lambda r: (order[r["state"]], r["created_at"]))
    return render(
        request,
        "web/review_queue.html",
        {
            "nav": "reviews",
            "ready": [r for r in queued if r["state"] == "ready"],
            "waiting": [r for r in queued if r["state"] == "waiting"],
            "blocked": [r for r in queued if r["state"] == "blocked"],
            "mine": request_selectors.request_payloads(mine),
            "is_reviewer": access.is_reviewer(user),
            "sees_all": sees_all,
            "everything": request_selectors.request_payloads(everything),
            "status": status,
            "statuses": request_selectors.STATUSES,
        },
    )


def _page_state(user, screen: dict, refusal: str | None, waits_for: list[str]) -> str:
    """One of: decided, stale, blocked (conditions other than approvals missing), ready (the
    user may approve now), waiting (for other reviewers)."""
    r = screen["request"]
    if r["status"] in (TR.Status.APPLIED, TR.Status.REJECTED, TR.Status.CANCELLED):
        return "decided"
    if r["status"] != TR.Status.OPEN:
        return "stale"
    if waits_for:
        return "blocked"
    if refusal is None and user.get_username() not in r.get("approved_by", []):
        return "ready"
    return "waiting"


@page(access.AUTHENTICATED)
def review(request, request_id: int):
    req = request_selectors.request_get(request.user, request_id)
    screen = review_selectors.review_screen(req)
    policy = rules.policy_for(req.version.registered_model)
    is_open = screen["request"]["status"] == TR.Status.OPEN
    refusal = approvals.review_refusal(request.user, policy, req)
    waits_for = approvals.approval_waits_for(policy, req) if is_open else []
    state = _page_state(request.user, screen, refusal, waits_for)
    candidate_run = screen["candidate"]["run_id"]
    production_run = (screen["production"] or {}).get("run_id")
    runs = [r for r in (candidate_run, production_run) if r]
    names = {candidate_run: f"v{req.version.version} (this version)"}
    if production_run:
        names[production_run] = f"v{screen['production']['version']} (Production)"
    chart_data = charts.histories(runs) if runs else {}
    return render(
        request,
        "web/review.html",
        {
            "nav": "reviews",
            "req": req,
            "screen": screen,
            "state": state,
            "conditions": [m for m in screen["request"]["missing"] if m["code"] != "approvals"],
            "card_fields": [(label, screen["card"][name]) for name, label in CARD_FIELDS.items()],
            "can_decide": is_open and refusal is None,
            "why_not": refusal if is_open else None,
            "approve_waits_for": waits_for,
            "can_cancel": is_open
            and (req.requested_by_id == request.user.pk or access.is_admin(request.user)),
            "chart_data": chart_data,
            "chart_summary": charts.chart_summary(chart_data, names),
            "names": names,
        },
    )


@page(access.AUTHENTICATED)
def review_act(request, request_id: int):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    back = reverse("web:review", args=[request_id])
    action = request.POST.get("action")
    comment = request.POST.get("comment", "")
    try:
        if action == "comment":
            req = request_selectors.request_get(request.user, request_id)
            comment_services.comment_create(
                user=request.user,
                name=req.version.registered_model.name,
                version=req.version.version,
                text=comment,
                request_id=req.pk,
            )
            messages.success(request, "Comment added.")
        else:
            messages.info(
                request,
                review_services.decide(
                    user=request.user,
                    request_id=request_id,
                    action=action or "",
                    comment=comment,
                    reason=request.POST.get("reason", ""),
                    basis=request.POST.get("basis") or None,
                ),
            )
    except ApplicationError as exc:
        if exc.status == 404:
            raise
        refusals.show(request, exc)
    return HttpResponseRedirect(back)


def _version_url(mv: ModelVersion) -> str:
    return reverse("web:version", args=[mv.registered_model.name, mv.version])


@page(access.MODEL_EDIT)
def request_promotion(request, name: str, version: str):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    mv = registry_selectors.model_version_by_name(name, version)
    try:
        outcome = request_services.request_transition(
            user=request.user,
            name=name,
            version=version,
            stage=request.POST.get("stage", ""),
            comment=request.POST.get("comment", ""),
        )
    except ApplicationError as exc:
        if exc.status == 404:
            raise
        refusals.show(request, exc)
        return HttpResponseRedirect(_version_url(mv))
    if outcome.applied:
        messages.success(request, f"Version {mv.version} is now {outcome.version.current_stage}.")
        return HttpResponseRedirect(_version_url(mv))
    messages.info(
        request,
        f"Transition request {outcome.request.pk} is open. Still missing: "
        + "; ".join(m.message for m in outcome.missing),
    )
    return HttpResponseRedirect(reverse("web:review", args=[outcome.request.pk]))


@page(access.MODEL_READ)
def card(request, name: str, version: str):
    mv = registry_selectors.model_version_by_name(name, version)
    context = governance_context(request.user, mv)
    if request.method == "POST":
        access.authorize(request, access.MODEL_EDIT, {"name": name, "version": version})
        try:
            card_services.card_update(
                user=request.user,
                name=name,
                version=version,
                fields={f: request.POST.get(f, "") for f in CARD_FIELDS},
            )
            messages.success(request, "Model card saved.")
            return HttpResponseRedirect(reverse("web:card", args=[name, mv.version]))
        except ApplicationError as exc:
            refusals.show(request, exc)
    current, _ = card_selectors.card_get(mv)
    fields = [
        {
            "name": f,
            "label": label,
            "value": getattr(current, f),
            "filled": bool(getattr(current, f).strip()),
        }
        for f, label in CARD_FIELDS.items()
    ]
    return render(
        request,
        "web/model_card.html",
        {**context, "nav": "models", "fields": fields, "version_url": _version_url(mv)},
    )
