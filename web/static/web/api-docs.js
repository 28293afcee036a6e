// Starts Swagger UI on /api/v1/docs. A static file rather than drf-spectacular's inline
// script, which the pages' Content-Security-Policy (script-src 'self') blocks. Requests go
// with the session cookie (same origin); writes carry the CSRF token the page was given.
(function () {
  "use strict";
  var holder = document.getElementById("swagger-ui");
  if (!holder || typeof SwaggerUIBundle === "undefined") { return; }
  var csrfHeader = holder.getAttribute("data-csrf-header");
  var csrfToken = holder.getAttribute("data-csrf-token");
  window.ui = SwaggerUIBundle({
    url: holder.getAttribute("data-schema-url"),
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    requestInterceptor: function (request) {
      if (request.method && request.method !== "GET" && csrfHeader && csrfToken) {
        request.headers[csrfHeader] = csrfToken;
      }
      return request;
    }
  });
})();
