import os
import sys

from django.core.wsgi import get_wsgi_application

from kvconsole import jsonlog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvconsole.settings")

application = get_wsgi_application()

# A server's standard output carries its JSON log lines; other processes (the kv CLI,
# scripts) answer there, and get the lines on standard error as settings.LOGGING says.
jsonlog.send_lines_to(sys.stdout)
