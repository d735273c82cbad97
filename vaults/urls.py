"""Console URLs for resource groups and vaults."""

from django.urls import path

from .views import access, activity, alerts, applications, resources

urlpatterns = [
    path("activity/", activity.activity, name="activity"),
    path(
        "activity/export.csv",
        activity.activity_export,
        {"kind": "csv"},
        name="activity-export-csv",
    ),
    path(
        "activity/export.jsonl",
        activity.activity_export,
        {"kind": "jsonl"},
        name="activity-export-jsonl",
    ),
    path("alerts/", alerts.alert_list, name="alert-list"),
    path("alerts/new/", alerts.alert_rule_create, name="alert-rule-create"),
    path(
        "alerts/notifications/requeue/",
        alerts.notification_requeue_all,
        name="notification-requeue-all",
    ),
    path(
        "alerts/notifications/<uuid:uid>/requeue/",
        alerts.notification_requeue,
        name="notification-requeue",
    ),
    path("alerts/<str:name>/test/", alerts.alert_rule_test, name="alert-rule-test"),
    path("alerts/<str:name>/delete/", alerts.alert_rule_delete, name="alert-rule-delete"),
    path("groups/", resources.group_list, name="group-list"),
    path("groups/new/", resources.group_create, name="group-create"),
    path("groups/<str:name>/", resources.group_detail, name="group-detail"),
    path("groups/<str:name>/delete/", resources.group_delete, name="group-delete"),
    path("vaults/", resources.vault_list, name="vault-list"),
    path("vaults/new/", resources.vault_create, name="vault-create"),
    path("vaults/<str:name>/", resources.vault_detail, name="vault-detail"),
    path("vaults/<str:name>/properties/", resources.vault_properties, name="vault-properties"),
    path("vaults/<str:name>/delete/", resources.vault_delete, name="vault-delete"),
    path("groups/<str:name>/access/", access.group_access, name="group-access"),
    path("vaults/<str:name>/access/", access.vault_access, name="vault-access"),
    path(
        "vaults/<str:name>/access/effective/",
        access.vault_effective_access,
        name="vault-effective-access",
    ),
    path(
        "vaults/<str:name>/access/policies/edit/",
        access.vault_policy_edit,
        name="vault-policy-edit",
    ),
    path(
        "vaults/<str:name>/access/policies/delete/",
        access.vault_policy_delete,
        name="vault-policy-delete",
    ),
    path(
        "vaults/<str:name>/access/model/",
        access.vault_permission_model,
        name="vault-permission-model",
    ),
    path(
        "vaults/<str:vault_name>/keys/<str:key_name>/access/",
        access.key_access,
        name="key-access",
    ),
    path(
        "vaults/<str:vault_name>/keys/<str:key_name>/access/effective/",
        access.key_effective_access,
        name="key-effective-access",
    ),
    path(
        "role-assignments/<uuid:uid>/delete/",
        access.role_assignment_delete,
        name="role-assignment-delete",
    ),
    path("principals/", access.principal_search, name="principal-search"),
    path("vaults/<str:name>/activity/", activity.vault_activity, name="vault-activity"),
    path(
        "vaults/<str:name>/activity/export.csv",
        activity.vault_activity_export,
        {"kind": "csv"},
        name="vault-activity-export-csv",
    ),
    path(
        "vaults/<str:name>/activity/export.jsonl",
        activity.vault_activity_export,
        {"kind": "jsonl"},
        name="vault-activity-export-jsonl",
    ),
    path("applications/", applications.application_list, name="application-list"),
    path("applications/new/", applications.application_create, name="application-create"),
    path(
        "applications/<uuid:client_id>/",
        applications.application_detail,
        name="application-detail",
    ),
    path(
        "applications/<uuid:client_id>/rename/",
        applications.application_rename,
        name="application-rename",
    ),
    path(
        "applications/<uuid:client_id>/disable/",
        applications.application_disable,
        name="application-disable",
    ),
    path(
        "applications/<uuid:client_id>/enable/",
        applications.application_enable,
        name="application-enable",
    ),
    path(
        "applications/<uuid:client_id>/delete/",
        applications.application_delete,
        name="application-delete",
    ),
    path(
        "applications/<uuid:client_id>/secrets/new/",
        applications.application_secret_add,
        name="application-secret-add",
    ),
    path(
        "applications/<uuid:client_id>/certificates/new/",
        applications.application_certificate_add,
        name="application-certificate-add",
    ),
    path(
        "applications/<uuid:client_id>/credentials/<uuid:key_id>/revoke/",
        applications.application_credential_revoke,
        name="application-credential-revoke",
    ),
    path(
        "applications/<uuid:client_id>/workloads/new/",
        applications.application_identity_add,
        name="application-identity-add",
    ),
    path(
        "applications/<uuid:client_id>/workloads/<uuid:key_id>/delete/",
        applications.application_identity_delete,
        name="application-identity-delete",
    ),
]
