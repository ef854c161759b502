// /docs: Swagger UI (vendored) showing this service's own /openapi.json; nothing is fetched elsewhere.
window.addEventListener('DOMContentLoaded', () => {
  window.SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null, // the default asks validator.swagger.io: no call leaves this service
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});
