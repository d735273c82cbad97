"""Console pages for alerts: the rules (who hears about which events, by email or webhook),
a test event sent to one rule, and the outbox of notifications on their way.

Pages read through selectors, so a rule the operator may not read is not listed and its
pages are a 404; each action calls one alert service, which authorizes and records it (a
forged request too). A webhook rule's signing secret is shown in the one response that
created the rule and nowhere else: not in a message, the session, a later page or a cache.
"""

from dataclasses import dataclass
from uuid import UUID

from django.http import Http404, HttpResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kvconsole.console import done, page, posted
from kvconsole.errors import BadParameter, Conflict, NotFound
from kvconsole.http import AuthedRequest

from .. import selectors, webhooks
from .. import services as vault_services
from ..forms_alerts import AlertRuleForm
from ..models import AlertRule, Notification
from ..permissions import DEPLOYMENT, Action, capabilities

DEAD_LETTERS_SHOWN = 10


@dataclass(frozen=True)
class RuleRow:
    rule: AlertRule
    can_test: bool
    can_delete: bool

    @property
    def scope(self) -> str:
        return vault_services.rule_scope(self.rule)

    @property
    def events(self) -> list[str]:
        return [vault_services.short_event_name(kind) for kind in self.rule.event_types]


@dataclass(frozen=True)
class DeadLetterRow:
    notification: Notification
    can_requeue: bool

    @property
    def event_name(self) -> str:
        return vault_services.short_event_name(self.notification.event.event_type)


def _list_url() -> str:
    return reverse("alert-list")


def _readable_rule(request: AuthedRequest, name: str) -> AlertRule:
    rule = selectors.alert_rule_list(actor=request.user).filter(name__iexact=name).first()
    if rule is None:
        raise Http404(f"No alert rule '{name}' that you can see.")
    return rule


@require_GET
def alert_list(request: AuthedRequest) -> HttpResponse:
    """The rules the operator may read, and the outbox of their notifications."""
    actor = request.user
    writable = set(
        selectors.alert_rule_list(actor=actor, action=Action.ALERT_RULE_WRITE).values_list(
            "pk", flat=True
        )
    )
    deletable = set(
        selectors.alert_rule_list(actor=actor, action=Action.ALERT_RULE_DELETE).values_list(
            "pk", flat=True
        )
    )
    rules = [
        RuleRow(rule, can_test=rule.pk in writable, can_delete=rule.pk in deletable)
        for rule in selectors.alert_rule_list(actor=actor)
    ]
    dead_letters = [
        DeadLetterRow(notification, can_requeue=notification.rule_id in writable)
        for notification in selectors.dead_letter_list(actor=actor, limit=DEAD_LETTERS_SHOWN)
    ]
    context = {
        "rules": rules,
        "counts": selectors.notification_counts(actor=actor),
        "dead_letters": dead_letters,
        "can_create": bool(selectors.alert_rule_scopes(actor=actor)),
        "can": capabilities(actor, DEPLOYMENT, requeue_all=Action.ALERT_RULE_WRITE),
    }
    return page(request, "vaults/alert_list.html", context, partial="outbox")


@require_http_methods(["GET", "POST"])
@sensitive_variables()  # a new signing secret is in hand: never in an error report
def alert_rule_create(request: AuthedRequest) -> HttpResponse:
    """Create a rule; a webhook's signing secret is in this response only."""
    scopes = selectors.alert_rule_scopes(actor=request.user)
    if request.method == "GET" and not scopes:
        raise Http404("There is no scope you may create alert rules at.")
    form = AlertRuleForm(posted(request), scopes=scopes)
    issued = None
    if request.method == "POST" and form.is_valid():
        try:
            issued = vault_services.alert_rule_create(actor=request.user, **form.rule_arguments())
        # The scope's key is typed in: a key that is not there is the form's mistake.
        except (BadParameter, Conflict, NotFound) as error:
            form.refuse(error)
        else:
            if issued.secret is None:
                return done(request, f"Alert rule {issued.rule.name} created.", _list_url())
    context = {"form": form, "issued": issued, "signature_header": webhooks.SIGNATURE_HEADER}
    response = page(request, "vaults/alert_rule_form.html", context, partial="dialog")
    if issued is not None:
        add_never_cache_headers(response)
    return response


@require_POST
def alert_rule_test(request: AuthedRequest, name: str) -> HttpResponse:
    """Queue a test event for one rule; the worker delivers it like any other."""
    event = vault_services.alert_rule_test(actor=request.user, name=name)
    message = (
        f"A test event is queued for alert rule {event.subject}; it is delivered like any other."
    )
    return done(request, message, _list_url())


@require_http_methods(["GET", "POST"])
def alert_rule_delete(request: AuthedRequest, name: str) -> HttpResponse:
    if request.method == "POST":
        given_up = vault_services.alert_rule_delete(actor=request.user, name=name)
        message = f"Alert rule {name} deleted."
        if given_up:
            message += f" {given_up} undelivered notification{'s' if given_up != 1 else ''} "
            message += "dead-lettered."
        return done(request, message, _list_url())
    rule = _readable_rule(request, name)
    row = RuleRow(rule, can_test=False, can_delete=True)
    return page(request, "vaults/alert_rule_delete.html", {"row": row}, partial="confirm")


@require_POST
def notification_requeue(request: AuthedRequest, uid: UUID) -> HttpResponse:
    requeued = vault_services.notification_requeue(actor=request.user, uids=[str(uid)])
    message = "The notification is queued again." if requeued else "Nothing was requeued."
    return done(request, message, _list_url())


@require_POST
def notification_requeue_all(request: AuthedRequest) -> HttpResponse:
    requeued = vault_services.notification_requeue(actor=request.user, all_dead=True)
    message = f"{requeued} dead-lettered notification{'s' if requeued != 1 else ''} queued again."
    return done(request, message, _list_url())
