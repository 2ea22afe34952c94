// Kept out of the HTML so the Content-Security-Policy can forbid inline scripts.
(function () {
  var spec = document.currentScript.getAttribute("data-spec");
  window.ui = SwaggerUIBundle({
    url: spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
})();
