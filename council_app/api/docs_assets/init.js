// Swagger UI for /api/docs: the document this server generates, nothing from the internet
// (validatorUrl off: Swagger UI would otherwise send the document to validator.swagger.io).
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
};
