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

  // A slot cell shows its symbol from the sprite (symbols.svg#s-<name>).
  function setSymbol(cell, symbol) {
    var name = String(symbol).toLowerCase();
    cell.setAttribute("data-symbol", symbol);
    cell.title = name.charAt(0).toUpperCase() + name.slice(1);
    var svg = cell.querySelector("svg");
    svg.setAttribute("aria-label", name);
    svg.querySelector("use").setAttribute("href", root.dataset.symbolsUrl + "#s-" + name);
  }

  function showResult(round) {
    var won = round.payout !== "0" && Number(round.payout) > 0;
    if (game === "jxo-dice") {
      var roll = document.getElementById("jxo-roll");
      text("jxo-roll", round.result.roll);
      roll.classList.toggle("jxo-win", round.result.win);
      roll.classList.toggle("jxo-lost", !round.result.win);
      var marker = document.getElementById("jxo-track-marker");
      marker.hidden = false;
      marker.style.left = Math.min(Math.max(Number(round.result.roll), 0), 100) + "%";
    } else {
      var reels = document.querySelectorAll("#jxo-reels .jxo-reel");
      round.result.window.forEach(function (column, i) {
        var cells = reels[i].querySelectorAll(".jxo-cell");
        column.forEach(function (symbol, j) { setSymbol(cells[j], symbol); });
      });
      var box = document.getElementById("jxo-reels");
      box.classList.remove("jxo-spinning");
      box.classList.toggle("jxo-won", won);
    }
    say(won ? "You win " + round.payout + " " + round.currency + "!" : "No win this time.", false);
  }

  // Stake chips: Min, ½, 2×, Max (kept within the table's limits; display only, the server
  // checks every stake again).
  var stakeInput = document.getElementById("jxo-stake");
  function clampStake(value) {
    var min = Number(root.dataset.minBet), max = Number(root.dataset.maxBet);
    if (!isFinite(value)) { value = min; }
    return Math.min(Math.max(value, min), max).toFixed(2);
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-stake]"), function (chip) {
    chip.addEventListener("click", function () {
      var now = Number(stakeInput.value);
      var how = chip.getAttribute("data-stake");
      var next = { min: Number(root.dataset.minBet), max: Number(root.dataset.maxBet),
        half: now / 2, double: now * 2 }[how];
      stakeInput.value = clampStake(next);
      stakeInput.dispatchEvent(new Event("input"));
    });
  });

  function refresh() {
    return api(root.dataset.stateUrl).then(function (answer) {
      if (!answer.success) { say(answer.message, true); return; }
      text("jxo-balance", answer.data.balance);
      showSeed(answer.data.seed);
    });
  }

  if (game === "jxo-dice") {
    var target = document.getElementById("jxo-target");
    var slider = document.getElementById("jxo-target-range");
    var update = function () {
      var t = Number(target.value);
      if (t >= 1 && t <= 98) {
        var multiplier = Math.floor(9900 / t * 100) / 10000;
        text("jxo-chance", t.toFixed(2));
        text("jxo-target-shown", t.toFixed(2));
        // Display only; the server computes the exact payout (0.99 x 100 / target).
        text("jxo-multiplier", multiplier.toFixed(4));
        var stake = Number(stakeInput.value);
        text("jxo-payout-on-win", isFinite(stake) && stake > 0
          ? (Math.floor(stake * multiplier * 100) / 100).toFixed(2) : "—");
        document.getElementById("jxo-track-win").style.width = t + "%";
      }
    };
    slider.addEventListener("input", function () {
      target.value = Number(slider.value).toFixed(2);
      update();
    });
    target.addEventListener("input", function () {
      slider.value = target.value;
      update();
    });
    stakeInput.addEventListener("input", update);
    update();
  }

  function play(body, button) {
    button.disabled = true;
    say(game === "jxo-dice" ? "Rolling..." : "Spinning...", false);
    var spinning = document.getElementById("jxo-reels");
    if (spinning) { spinning.classList.remove("jxo-won"); spinning.classList.add("jxo-spinning"); }
    api(root.dataset.playUrl, body).then(function (answer) {
      if (spinning) { spinning.classList.remove("jxo-spinning"); }
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
    }).then(function () {
      button.disabled = false;
      if (spinning) { spinning.classList.remove("jxo-spinning"); }
    });
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
