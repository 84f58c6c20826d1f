/* The till (console counter sale). No framework: the basket lives in this page and in
   sessionStorage (a reload, or a payment that was refused, keeps it); every change asks the
   server for the price preview, one request at a time; the sale is submitted by an ordinary
   form post carrying an id made here, so a double click or a resend is one sale. After a
   refused payment the server sends the page back with ?retry=<that id>: a new attempt gets a
   new id. The receipt page forgets the basket of the sale it shows. */
(function () {
  "use strict";

  var STORAGE = "console-pos:";

  function load(store) {
    try {
      return JSON.parse(window.sessionStorage.getItem(STORAGE + store)) || {};
    } catch (error) {
      return {};
    }
  }

  function save(store, state) {
    try {
      window.sessionStorage.setItem(STORAGE + store, JSON.stringify(state));
    } catch (error) {
      /* private mode: the basket lives as long as the page */
    }
  }

  function newId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // randomUUID needs a secure context; a till on the shop's LAN over plain HTTP has not.
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) {
      return (b + 0x100).toString(16).slice(1);
    }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  // --- The receipt: the sale is done, its basket goes. ---------------------------------------
  var receipt = document.getElementById("receipt");
  if (receipt) {
    var done = load(receipt.dataset.store);
    if (done.clientId && done.clientId === receipt.dataset.clientReference) {
      window.sessionStorage.removeItem(STORAGE + receipt.dataset.store);
    }
    return;
  }

  var root = document.getElementById("pos");
  if (!root) {
    return;
  }

  // Back from the receipt through the browser's cache: read the basket afresh.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      window.location.reload();
    }
  });

  var texts = JSON.parse(document.getElementById("pos-texts").textContent);
  var store = root.dataset.store;
  var quoteUrl = root.dataset.quoteUrl;
  var $ = function (id) { return document.getElementById(id); };

  var saved = load(store);
  var state = {
    lines: Array.isArray(saved.lines) ? saved.lines : [],
    member: saved.member || "",
    coupon: saved.coupon || "",
    points: saved.points || 0,
    clientId: saved.clientId || ""
  };
  var retry = new URLSearchParams(window.location.search).get("retry");
  if (!state.clientId || (retry && retry === state.clientId)) {
    state.clientId = newId();
  }
  if (retry) {
    window.history.replaceState(null, "", window.location.pathname);
  }
  save(store, state);

  var answer = null; // the last price preview
  var queue = Promise.resolve();
  var inFlight = 0;
  var submitting = false;

  function copy(from) {
    return {
      lines: from.lines.map(function (line) { return { code: line.code, quantity: line.quantity }; }),
      member: from.member,
      coupon: from.coupon,
      points: from.points,
      clientId: from.clientId
    };
  }

  function format(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_match, name) { return String(values[name]); });
  }

  function yuanToFen(text) {
    var match = /^\s*¥?\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$/.exec(text || "");
    if (!match) {
      return NaN;
    }
    var cents = (match[2] || "").padEnd(2, "0");
    return parseInt(match[1], 10) * 100 + parseInt(cents, 10);
  }

  function fenToYuan(fen) {
    var sign = fen < 0 ? "-" : "";
    var abs = Math.abs(fen);
    return sign + "¥" + Math.floor(abs / 100) + "." + String(abs % 100).padStart(2, "0");
  }

  function csrf() {
    var field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function show(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  // --- Asking the server -----------------------------------------------------------------------

  function ask(candidate, memberCode) {
    var body = new FormData();
    body.append("basket", JSON.stringify(candidate.lines));
    body.append("member", candidate.member || "");
    body.append("member_code", memberCode || "");
    body.append("coupon_code", candidate.coupon || "");
    body.append("points", String(candidate.points || 0));
    return fetch(quoteUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf(), "Accept": "application/json" }
    }).then(function (response) {
      return response.json().then(function (data) {
        return { ok: response.ok, data: data };
      });
    });
  }

  /* change(current) -> the candidate state; it runs when this request's turn comes, so a fast
     scanner's second item builds on the first. Refused: the basket stays as it was. */
  function update(change, memberCode) {
    inFlight += 1;
    queue = queue.then(function () {
      var candidate = change(copy(state));
      return ask(candidate, memberCode).then(function (result) {
        if (!result.ok) {
          show($("pos-error"), result.data.error ? result.data.error.message : texts.network);
          render();
          return;
        }
        var data = result.data;
        state.lines = data.lines.map(function (line) { return { code: line.code, quantity: line.quantity }; });
        state.member = data.member ? data.member.token : "";
        state.coupon = data.member ? data.coupon_code : "";
        state.points = data.member ? data.points_redeemed : 0;
        save(store, state);
        answer = data;
        show($("pos-error"), "");
        show($("pos-warning"), (data.warnings || []).join(" "));
        render();
      }, function () {
        show($("pos-error"), texts.network);
        render();
      });
    }).then(function () {
      inFlight -= 1;
    });
    return queue;
  }

  // --- Drawing ---------------------------------------------------------------------------------

  function cell(row, text, className) {
    var td = document.createElement("td");
    if (className) {
      td.className = className;
    }
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function renderLines() {
    var body = $("basket-lines");
    body.textContent = "";
    var lines = answer ? answer.lines : [];
    lines.forEach(function (line) {
      var row = document.createElement("tr");
      row.className = "basket-line" + (line.short !== null && line.short !== undefined ? " short" : "");
      row.dataset.code = line.code;
      var item = cell(row, "");
      var name = document.createElement("strong");
      name.textContent = line.name + (line.spec ? " " + line.spec : "");
      item.appendChild(name);
      var code = document.createElement("div");
      code.className = "muted";
      code.textContent = line.barcode + " · " + line.sku;
      item.appendChild(code);
      if (line.short !== null && line.short !== undefined) {
        var warning = document.createElement("div");
        warning.className = "short-note";
        warning.textContent = format(texts.only_left, { units: line.short });
        item.appendChild(warning);
      }
      cell(row, line.unit, "num");
      var quantityCell = cell(row, "", "num");
      var quantity = document.createElement("input");
      quantity.type = "number";
      quantity.min = "1";
      quantity.max = "999";
      quantity.value = String(line.quantity);
      quantity.className = "line-quantity";
      quantity.setAttribute("aria-label", texts.quantity);
      quantity.addEventListener("change", function () {
        var wanted = parseInt(quantity.value, 10);
        update(function (candidate) {
          candidate.lines.forEach(function (each) {
            if (each.code === line.code) {
              each.quantity = wanted;
            }
          });
          return candidate;
        });
      });
      quantityCell.appendChild(quantity);
      cell(row, line.discount ? "-" + line.discount : "", "num discount");
      cell(row, line.total, "num line-total");
      var removeCell = cell(row, "");
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "secondary remove-line";
      remove.textContent = "×";
      remove.title = texts.remove;
      remove.setAttribute("aria-label", texts.remove + " " + line.name);
      remove.addEventListener("click", function () {
        update(function (candidate) {
          candidate.lines = candidate.lines.filter(function (each) { return each.code !== line.code; });
          return candidate;
        });
      });
      removeCell.appendChild(remove);
      body.appendChild(row);
    });
    $("basket-empty").hidden = lines.length > 0;
  }

  function renderMember() {
    var member = answer && answer.member;
    $("member-none").hidden = !!member;
    $("member-card").hidden = !member;
    if (!member) {
      return;
    }
    $("member-name").textContent = member.name;
    $("member-mobile").textContent = member.mobile;
    $("member-tier").textContent = member.tier
      ? member.tier + (member.tier_discount_percent ? " −" + member.tier_discount_percent + "%" : "")
      : "";
    $("member-tier").hidden = !member.tier;
    $("member-points").textContent = String(member.points_balance);
    var select = $("coupon");
    while (select.options.length > 1) {
      select.remove(1);
    }
    member.coupons.forEach(function (coupon) {
      var option = document.createElement("option");
      option.value = coupon.code;
      option.textContent = coupon.name + " · " + coupon.kind + " · " + coupon.until;
      select.appendChild(option);
    });
    select.value = state.coupon || "";
    $("points").value = String(state.points || 0);
    $("points").max = String(member.points_balance);
  }

  function renderTotals() {
    $("subtotal").textContent = answer ? answer.subtotal : "¥0.00";
    var list = $("discounts");
    list.textContent = "";
    (answer ? answer.discounts : []).forEach(function (discount) {
      var term = document.createElement("dt");
      term.textContent = discount.label;
      var value = document.createElement("dd");
      value.textContent = "-" + discount.amount;
      list.appendChild(term);
      list.appendChild(value);
    });
    $("total").textContent = answer ? answer.total : "¥0.00";
    renderChange();
    var empty = !state.lines.length;
    ["pay-cash", "pay-wechat"].forEach(function (id) {
      if ($(id)) {
        $(id).disabled = empty || submitting;
      }
    });
  }

  function renderChange() {
    var tendered = yuanToFen($("tendered").value);
    var label = $("change-label");
    var value = $("change");
    value.parentNode.classList.remove("short");
    if (!answer || isNaN(tendered) || !$("tendered").value) {
      label.textContent = texts.change;
      value.textContent = "—";
      return;
    }
    var change = tendered - answer.total_fen;
    if (change < 0) {
      label.textContent = texts.short;
      value.textContent = fenToYuan(-change);
      value.parentNode.classList.add("short");
    } else {
      label.textContent = texts.change;
      value.textContent = fenToYuan(change);
    }
  }

  function render() {
    renderLines();
    renderMember();
    renderTotals();
  }

  // --- Scanning and editing --------------------------------------------------------------------

  $("scan-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var code = $("scan").value.trim();
    var quantity = parseInt($("scan-quantity").value, 10) || 1;
    $("scan").value = "";
    $("scan-quantity").value = "1";
    $("scan").focus();
    if (!code) {
      return;
    }
    if (code.indexOf(":") !== -1) {
      // A member code (signed, with colons); barcodes and SKU codes have none.
      update(function (candidate) {
        candidate.member = "";
        candidate.coupon = "";
        candidate.points = 0;
        return candidate;
      }, code);
      return;
    }
    update(function (candidate) {
      var same = candidate.lines.filter(function (line) {
        return line.code.toUpperCase() === code.toUpperCase();
      })[0];
      if (same) {
        same.quantity += quantity;
      } else {
        candidate.lines.push({ code: code, quantity: quantity });
      }
      return candidate;
    });
  });

  $("coupon").addEventListener("change", function () {
    var code = $("coupon").value;
    update(function (candidate) {
      candidate.coupon = code;
      return candidate;
    });
  });

  $("points").addEventListener("change", function () {
    var points = Math.max(parseInt($("points").value, 10) || 0, 0);
    update(function (candidate) {
      candidate.points = points;
      return candidate;
    });
  });

  $("points-most").addEventListener("click", function () {
    var most = answer && answer.member ? answer.member.points_balance : 0;
    update(function (candidate) {
      candidate.points = most;
      return candidate;
    });
  });

  $("member-remove").addEventListener("click", function () {
    update(function (candidate) {
      candidate.member = "";
      candidate.coupon = "";
      candidate.points = 0;
      return candidate;
    });
  });

  $("tendered").addEventListener("input", renderChange);

  // --- Paying ----------------------------------------------------------------------------------

  function fill(form) {
    var values = {
      client_reference: state.clientId,
      basket: JSON.stringify(state.lines),
      member: state.member,
      coupon_code: state.coupon,
      points: String(state.points || 0),
      expected_total: answer ? String(answer.total_fen) : ""
    };
    Array.prototype.forEach.call(form.querySelectorAll("[data-field]"), function (input) {
      input.value = values[input.dataset.field];
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("form.pay-form"), function (form) {
    form.addEventListener("submit", function (event) {
      if (submitting) {
        event.preventDefault();
        return;
      }
      if (inFlight > 0) {
        // The last scan is still being priced: send the sale once it is.
        event.preventDefault();
        queue.then(function () {
          form.requestSubmit();
        });
        return;
      }
      if (!state.lines.length || !answer) {
        event.preventDefault();
        show($("pos-error"), texts.empty);
        return;
      }
      fill(form);
      submitting = true;
      show($("paying"), form.id === "wechat-form" ? texts.paying_wechat : texts.paying_cash);
      // After this submit has gathered its fields: no second sale from a second click.
      window.setTimeout(renderTotals, 0);
    });
  });

  render();
  if (state.lines.length || state.member) {
    update(function (candidate) { return candidate; });
  }
}());
