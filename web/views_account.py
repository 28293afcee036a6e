"""Sign-in and the user's own API tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts import services
from accounts.forms import with_throttle_status
from accounts.models import ApiToken
from core import access
from web.forms import ThrottledLoginForm, TokenForm
from web.pages import page


class LoginView(auth_views.LoginView):
    template_name = "web/login.html"
    authentication_form = ThrottledLoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        return with_throttle_status(super().form_invalid(form))

    def get_default_redirect_url(self):
        # A reviewer comes to review: they land on their queue (a `next` still wins).
        user = self.request.user
        if access.is_reviewer(user) and not access.is_admin(user):
            return reverse("web:reviews")
        return super().get_default_redirect_url()


login = LoginView.as_view()
login.access_rule = access.PUBLIC
logout = auth_views.LogoutView.as_view()
logout.access_rule = access.PUBLIC


NEW_TOKEN_KEY = "custody_new_token"


@page(access.AUTHENTICATED)
def tokens(request):
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _, raw = services.token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            expires_in_days=form.cleaned_data["expires_in_days"],
        )
        # Post/redirect/get, so a refresh does not create a second token. The token waits in
        # the server-side session for the one page that shows it, which takes it out.
        request.session[NEW_TOKEN_KEY] = raw
        return redirect("web:tokens")
    created = request.session.pop(NEW_TOKEN_KEY, None) if request.method == "GET" else None
    rows = ApiToken.objects.filter(user=request.user).order_by("-created_at")
    return render(
        request,
        "web/tokens.html",
        {"nav": "tokens", "form": form, "tokens": rows, "created": created},
    )


@page(access.AUTHENTICATED)
def token_revoke(request, token_id: int):
    if request.method != "POST":
        return redirect("web:tokens")
    token = ApiToken.objects.filter(pk=token_id, user=request.user).first()
    if token is not None:
        services.token_revoke(token=token)
        messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("web:tokens")
