from django.conf import settings
from django.http import HttpRequest


def deployment(request: HttpRequest) -> dict[str, str]:
    return {"deployment_name": settings.KVCONSOLE_DEPLOYMENT_NAME}
