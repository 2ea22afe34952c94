// Fairness page: recompute an outcome with the public verify endpoint.
(function () {
  "use strict";
  var form = document.getElementById("jxo-verify-form");
  if (!form) { return; }
  var out = document.getElementById("jxo-verify-result");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (String(value).trim() !== "") { params.append(key, String(value).trim()); }
    });
    fetch(form.dataset.verifyUrl + "?" + params.toString(), { headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        if (!answer.success) { out.textContent = answer.message; return; }
        var data = answer.data;
        var lines = [
          "SHA-256(server seed): " + data.server_seed_hash,
          data.hash_matches === null ? "" : (data.hash_matches ? "Matches the committed hash." : "DOES NOT match the committed hash!"),
          "HMAC: " + data.hmac,
          "Result: " + JSON.stringify(data.result)
        ];
        out.textContent = lines.filter(Boolean).join("\n");
      })
      .catch(function () { out.textContent = "Could not reach the verifier."; });
  });
}());
