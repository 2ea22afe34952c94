// JxOriginals game page: places bets through the studio API and shows results and balance.
// No inline script (CSP script-src 'self'); everything the page needs is in data-* attributes.
(function () {
  "use strict";
  var root = document.getElementById("jxo-game");
  if (!root) { return; }
  var game = root.dataset.game;
  var message = document.getElementById("jxo-message");
  var playButton = document.getElementById("jxo-play");

  function say(text, isError) {
    message.textContent = text;
    message.classList.toggle("jxo-error", Boolean(isError));
  }

  function api(url, body) {
    var options = { method: body ? "POST" : "GET", headers: { "Accept": "application/json" } };
    if (body) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () {
        return { success: false, message: "Unexpected answer (HTTP " + response.status + ")" };
      });
    });
  }

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = value; }
  }

  function showSeed(seed) {
    if (!seed) { return; }
    text("jxo-seed-hash", seed.server_seed_hash);
    text("jxo-client-seed", seed.client_seed);
    text("jxo-nonce", seed.next_nonce);
  }

  function addHistory(round) {
    var body = document.getElementById("jxo-history");
    var row = document.createElement("tr");
    var result = "";
    if (round.result) {
      result = round.result.roll !== undefined ? round.result.roll : round.result.line.join(" ");
    }
    var link = document.createElement("a");
    link.href = root.dataset.roundUrl.replace("ROUND", round.round_id);
    link.textContent = round.round_id.slice(-8);
    var cells = [link, round.nonce, round.stake, result, round.payout, round.status];
    cells.forEach(function (value) {
      var cell = document.createElement("td");
      if (value instanceof Node) { cell.appendChild(value); } else { cell.textContent = value; }
      row.appendChild(cell);
    });
    body.insertBefore(row, body.firstChild);
    while (body.children.length > 20) { body.removeChild(body.lastChild); }
  }

  function showResult(round) {
    if (game === "jxo-dice") {
      text("jxo-roll", round.result.roll);
      document.getElementById("jxo-roll").classList.toggle("jxo-win", round.result.win);
    } else {
      var reels = document.querySelectorAll("#jxo-reels .jxo-reel");
      round.result.window.forEach(function (column, i) {
        var cells = reels[i].querySelectorAll(".jxo-cell");
        column.forEach(function (symbol, j) { cells[j].textContent = symbol; });
      });
    }
    var won = round.payout !== "0" && Number(round.payout) > 0;
    say(won ? "You win " + round.payout + " " + round.currency + "!" : "No win this time.", false);
  }

  function refresh() {
    return api(root.dataset.stateUrl).then(function (answer) {
      if (!answer.success) { say(answer.message, true); return; }
      text("jxo-balance", answer.data.balance);
      showSeed(answer.data.seed);
    });
  }

  if (game === "jxo-dice") {
    var target = document.querySelector("#jxo-play-form input[name=target]");
    var update = function () {
      var t = Number(target.value);
      if (t >= 1 && t <= 98) {
        text("jxo-chance", t.toFixed(2));
        // Display only; the server computes the exact payout (0.99 x 100 / target).
        text("jxo-multiplier", (Math.floor(9900 / t * 100) / 10000).toFixed(4));
      }
    };
    target.addEventListener("input", update);
    update();
  }

  function play(body, button) {
    button.disabled = true;
    say(game === "jxo-dice" ? "Rolling..." : "Spinning...", false);
    api(root.dataset.playUrl, body).then(function (answer) {
      if (!answer.success) {
        var detail = (answer.errors || []).map(function (e) { return e.field + ": " + e.message; });
        say(answer.message + (detail.length ? " (" + detail.join("; ") + ")" : ""), true);
        return refresh();
      }
      var round = answer.data;
      showResult(round);
      if (round.balance !== null) { text("jxo-balance", round.balance); }
      addHistory(round);
      text("jxo-nonce", round.nonce + 1);
      if (body.free_round) {
        var left = document.getElementById("jxo-free-" + body.free_round);
        if (left) { left.textContent = Math.max(Number(left.textContent) - 1, 0); }
      }
      return null;
    }).catch(function () {
      say("Connection lost. Your round is safe: reload to see it.", true);
    }).then(function () { button.disabled = false; });
  }

  function targetOf(body) {
    var form = document.getElementById("jxo-play-form");
    if (form.target) { body.target = form.target.value.trim(); }
    return body;
  }

  document.getElementById("jxo-play-form").addEventListener("submit", function (event) {
    event.preventDefault();
    play(targetOf({ stake: event.target.stake.value.trim() }), playButton);
  });

  Array.prototype.forEach.call(document.querySelectorAll(".jxo-free-play"), function (button) {
    button.addEventListener("click", function () {
      play(targetOf({ free_round: button.dataset.freeRound }), button);
    });
  });

  document.getElementById("jxo-seed-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var value = event.target.client_seed.value.trim();
    api(root.dataset.seedUrl, { client_seed: value || null }).then(function (answer) {
      if (!answer.success) { say(answer.message, true); return; }
      var previous = answer.data.previous;
      text("jxo-revealed-seed", previous.server_seed);
      text("jxo-revealed-hash", previous.server_seed_hash);
      text("jxo-revealed-client", previous.client_seed);
      text("jxo-revealed-rounds", previous.next_nonce);
      document.getElementById("jxo-revealed").hidden = false;
      showSeed(answer.data.current);
      say("New seed pair committed.", false);
    });
  });
}());
