from drf_spectacular.extensions import OpenApiAuthenticationExtension


class HeaderAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.drf.HeaderAuthentication"
    name = ["basicAuth", "bearerAuth"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "http",
                "scheme": "basic",
                "description": "username and password, or username and an API token",
            },
            {"type": "http", "scheme": "bearer", "description": "an API token (cust_…)"},
        ]
