import os
import sys

from django.core.asgi import get_asgi_application

from kvconsole import jsonlog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvconsole.settings")

application = get_asgi_application()

# As kvconsole/wsgi.py: a server's standard output carries its JSON log lines.
jsonlog.send_lines_to(sys.stdout)
