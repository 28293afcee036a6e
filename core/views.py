from django.http import HttpResponse

CUSTODY_VERSION = "0.1.0"


def health(request):
    return HttpResponse("OK", content_type="text/plain")


def version(request):
    return HttpResponse(CUSTODY_VERSION, content_type="text/plain")
