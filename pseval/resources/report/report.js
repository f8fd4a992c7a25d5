(function () {
  "use strict";
  try {
    main();
    document.body.setAttribute("data-ready", "1");
  } catch (error) {
    document.body.setAttribute("data-ready", "error");
    var banner = document.createElement("div");
    banner.className = "error-banner wrap";
    banner.textContent = "The interactive part of this report failed: " + error;
    document.body.insertBefore(banner, document.body.firstChild);
    throw error;
  }

  function main() {

  // ---- helpers ---------------------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") node.textContent = String(value);
        else if (key === "className") node.className = value;
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function fmt(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits === undefined ? 3 : digits);
  }

  function pct(value) {
    return value === null || value === undefined ? "–" : Math.round(value * 100) + " %";
  }

  // ---- sortable tables -------------------------------------------------------------------------------
  function sortValue(cell, type) {
    var raw = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent.trim();
    if (raw === "" || raw === "–") return null;
    if (type === "num") {
      var number = parseFloat(raw);
      return isNaN(number) ? null : number;
    }
    return raw.toLowerCase();
  }

  function sortTable(table, index) {
    var th = table.tHead.rows[0].cells[index];
    var type = th.getAttribute("data-type") || "text";
    var current = th.getAttribute("aria-sort");
    var dir = current ? (current === "ascending" ? "descending" : "ascending") : (type === "num" ? "descending" : "ascending");
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var sign = dir === "ascending" ? 1 : -1;
    var keyed = rows.map(function (row, position) {
      return { row: row, key: sortValue(row.cells[index], type), pos: position };
    });
    keyed.sort(function (a, b) {
      if (a.key === null && b.key === null) return a.pos - b.pos;
      if (a.key === null) return 1;
      if (b.key === null) return -1;
      if (a.key < b.key) return -sign;
      if (a.key > b.key) return sign;
      return a.pos - b.pos;
    });
    keyed.forEach(function (item) { body.appendChild(item.row); });
  }

  function makeSortable(table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortTable(table, index); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortTable(table, index);
        }
      });
    });
  }

  // ---- data ------------------------------------------------------------------------------------------
  var data = JSON.parse(document.getElementById("pseval-data").textContent);
  var pairs = data.pairs;
  var saes = data.saes;

  function pairIndex(sae, i) {
    return sae.pidx ? sae.pidx[i] : sae.pstart + i;
  }

  function isCorrect(sae, i) {
    var same = sae.same.charAt(i) === "1";
    return same === (pairs.label[pairIndex(sae, i)] === 1);
  }

  function wordStats(sae) {
    var stats = {};
    for (var i = 0; i < sae.n; i++) {
      var p = pairIndex(sae, i);
      var word = pairs.word[p];
      var s = stats[word] || (stats[word] = { word: word, pos: {}, n: 0, correct: 0, same: 0, items: [] });
      s.n += 1;
      s.pos[pairs.pos[p]] = true;
      if (isCorrect(sae, i)) s.correct += 1;
      if (sae.same.charAt(i) === "1") s.same += 1;
      s.items.push(i);
    }
    return stats;
  }

  // ---- rendering of one pair -------------------------------------------------------------------------
  var WORD_CHAR = /[\p{L}\p{N}_]/u;

  function findWord(text, word) {
    if (!text || !word) return null;
    var lower = text.toLowerCase();
    var target = word.toLowerCase();
    var from = 0;
    while (true) {
      var at = lower.indexOf(target, from);
      if (at < 0) return null;
      var before = at > 0 ? text.charAt(at - 1) : "";
      var after = text.charAt(at + target.length);
      if (!(before && WORD_CHAR.test(before)) && !(after && WORD_CHAR.test(after))) return [at, at + target.length];
      from = at + 1;
    }
  }

  function sentence(text, span, word) {
    if (!text) return el("p", { className: "sentence muted", text: "(context not recorded in this result file)" });
    var range = span && span[1] <= text.length ? span : findWord(text, word);
    if (!range) return el("p", { className: "sentence", text: text });
    return el("p", { className: "sentence" }, [
      text.slice(0, range[0]),
      el("mark", { text: text.slice(range[0], range[1]) }),
      text.slice(range[1])
    ]);
  }

  function visibleToken(token) {
    return token.replace(/ /g, "\u2423").replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5");
  }

  function latentBlock(sae, latent, activation) {
    if (latent < 0) return el("div", { className: "latent muted", text: "no active latent" });
    var key = String(latent);
    var parts = [
      el("div", {}, [
        "top latent ",
        el("span", { className: "lid mono", text: "#" + latent }),
        el("span", { className: "act", text: "activation " + fmt(activation, 2) })
      ])
    ];
    var tokens = sae.lens[key];
    if (tokens && tokens.length) {
      parts.push(el("div", { className: "chips", title: "logit lens: tokens this latent's decoder direction promotes" },
        [el("span", { className: "muted", text: "logit lens" })].concat(tokens.map(function (t) {
          return el("span", { className: "chip", text: visibleToken(t) });
        }))));
    }
    var contexts = sae.ctx[key];
    if (contexts && contexts.length) {
      parts.push(el("details", {}, [
        el("summary", { text: "top contexts (" + contexts.length + ")" }),
        el("ol", {}, contexts.map(function (c) {
          return el("li", {}, [c[0], el("span", { className: "act", text: c[1] === null ? "" : fmt(c[1], 2) })]);
        }))
      ]));
    }
    return el("div", { className: "latent" }, parts);
  }

  function pairCard(sae, i) {
    var p = pairIndex(sae, i);
    var label = pairs.label[p];
    var same = sae.same.charAt(i) === "1";
    var ok = isCorrect(sae, i);
    var head = el("div", { className: "pair-head" }, [
      el("span", { className: "pair-id mono", text: pairs.id[p] }),
      el("span", { className: "tag " + (label === 1 ? "same" : "diff"), text: label === 1 ? "label: same meaning" : "label: different meaning" }),
      el("span", { className: "tag", text: same ? "predicted: same latent" : "predicted: different latents" }),
      el("span", { className: "verdict " + (ok ? "ok" : "err"), text: ok ? "\u2713 correct" : "\u2717 wrong" })
    ]);
    var contexts = el("div", { className: "contexts" }, [1, 2].map(function (k) {
      return el("div", { className: "ctx" }, [
        el("div", { className: "ctx-label", text: "context " + k }),
        sentence(pairs["c" + k][p], pairs["s" + k][p], pairs.word[p]),
        latentBlock(sae, sae["l" + k][i], sae["a" + k][i])
      ]);
    }));
    return el("article", { className: "pair" + (ok ? "" : " wrong") }, [head, contexts]);
  }

  // ---- drill-down ------------------------------------------------------------------------------------
  var saeSelect = document.getElementById("dd-sae");
  var wordSelect = document.getElementById("dd-word");
  var errorsOnly = document.getElementById("dd-errors");
  var wordsTable = document.getElementById("words");
  var pairsBox = document.getElementById("dd-pairs");
  var saeInfo = document.getElementById("dd-sae-info");
  var notes = document.getElementById("dd-notes");
  var current = { sae: 0, stats: {}, word: null };

  (data.notes || []).forEach(function (note) { notes.appendChild(el("div", { text: note })); });
  saes.forEach(function (sae, i) { saeSelect.appendChild(el("option", { value: i, text: sae.name })); });

  function renderPairs() {
    pairsBox.textContent = "";
    var sae = saes[current.sae];
    var s = current.stats[current.word];
    if (!sae || !s) {
      pairsBox.appendChild(el("div", { className: "empty", text: "No pairs to show." }));
      return;
    }
    var items = s.items.filter(function (i) { return !errorsOnly.checked || !isCorrect(sae, i); });
    pairsBox.appendChild(el("div", { className: "muted" }, [
      el("strong", { text: s.word }),
      " \u00b7 " + s.n + " pair" + (s.n === 1 ? "" : "s") + " \u00b7 accuracy " + pct(s.correct / s.n) +
        (errorsOnly.checked ? " \u00b7 showing " + items.length + " misclassified" : "")
    ]));
    if (!items.length) {
      pairsBox.appendChild(el("div", { className: "empty", text: "No misclassified pair for this word." }));
      return;
    }
    items.forEach(function (i) { pairsBox.appendChild(pairCard(sae, i)); });
  }

  function selectWord(word) {
    current.word = word;
    wordSelect.value = word;
    Array.prototype.forEach.call(wordsTable.tBodies[0].rows, function (row) {
      row.classList.toggle("selected", row.getAttribute("data-word") === word);
    });
    renderPairs();
  }

  function renderSae(index) {
    current.sae = index;
    var sae = saes[index];
    current.stats = wordStats(sae);
    var words = Object.keys(current.stats).sort(function (a, b) { return a.localeCompare(b); });
    saeInfo.textContent = sae.arch + " \u00b7 " + sae.hook + " \u00b7 " + sae.n + " pairs \u00b7 " + words.length + " words";
    wordSelect.textContent = "";
    var body = wordsTable.tBodies[0];
    body.textContent = "";
    Array.prototype.forEach.call(wordsTable.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    words.forEach(function (word) {
      var s = current.stats[word];
      wordSelect.appendChild(el("option", { value: word, text: word + " (" + s.n + ")" }));
      var accuracy = s.correct / s.n;
      var sameShare = s.same / s.n;
      var row = el("tr", { "data-word": word, tabindex: 0 }, [
        el("td", { text: word }),
        el("td", { text: Object.keys(s.pos).sort().join(", ") }),
        el("td", { className: "num", "data-v": s.n, text: String(s.n) }),
        el("td", { className: "num", "data-v": accuracy, text: pct(accuracy) }),
        el("td", { className: "num", "data-v": sameShare, text: pct(sameShare) })
      ]);
      row.addEventListener("click", function () { selectWord(word); });
      row.addEventListener("keydown", function (event) {
        if (event.key === "Enter") selectWord(word);
      });
      body.appendChild(row);
    });
    var keep = current.word && current.stats[current.word] ? current.word : words[0];
    selectWord(keep);
  }

  saeSelect.addEventListener("change", function () { renderSae(Number(saeSelect.value)); });
  wordSelect.addEventListener("change", function () { selectWord(wordSelect.value); });
  errorsOnly.addEventListener("change", renderPairs);

  // ---- summary table ---------------------------------------------------------------------------------
  // One table, or one per group of results scored on the same pairs.
  var summaries = document.querySelectorAll("table.summary-table");
  var showDense = document.getElementById("show-dense");
  var showRandom = document.getElementById("show-random");
  function applyFilters() {
    Array.prototype.forEach.call(summaries, function (summary) {
      summary.classList.toggle("hide-dense", !!showDense && !showDense.checked);
      summary.classList.toggle("hide-random", !!showRandom && !showRandom.checked);
    });
  }
  [showDense, showRandom].forEach(function (box) {
    if (box) box.addEventListener("change", applyFilters);
  });
  applyFilters();
  Array.prototype.forEach.call(document.querySelectorAll("a.sae-link"), function (link) {
    link.addEventListener("click", function () {
      var index = Number(link.getAttribute("data-sae"));
      saeSelect.value = String(index);
      renderSae(index);
    });
  });

  Array.prototype.forEach.call(summaries, makeSortable);
  makeSortable(wordsTable);
  if (saes.length) {
    renderSae(0);
  } else {
    pairsBox.appendChild(el("div", { className: "empty", text: "No per-pair details in these results." }));
  }
  }
})();
