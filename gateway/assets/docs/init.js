// Starts Swagger UI on this gateway's OpenAPI document. A file rather than an inline script: the
// page's Content-Security-Policy runs scripts from this origin only.
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  displayRequestDuration: true,
  // Nothing leaves this origin: no online validator, and no other document or configuration
  // taken from the address bar (?url=, ?configUrl=).
  validatorUrl: null,
  queryConfigEnabled: false,
});
