// kap12-bot web chat: renders the core's replies (plain data from /api/*) into the page.
// Every text goes in with textContent / createElement, never innerHTML: nothing a user or the knowledge
// base writes can become markup. No storage, no third-party requests; the session is an HttpOnly cookie
// (or, in a cross-site iframe where browsers withhold that cookie, an id kept in this variable only).
"use strict";

(function () {
  var LANGS = ["nb", "nn", "en"];
  var labels = null;
  var lang = "nb";
  var session = null;
  var busy = false;
  var framed = false;
  try { framed = window.self !== window.top; } catch (e) { framed = true; }

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function t(key, values, inLang) {
    var table = (labels && ((inLang && labels[inLang]) || labels[lang] || labels.nb)) || {};
    var text = table[key] || "";
    Object.keys(values || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(values[name]));
    });
    return text;
  }

  function preferredLanguage() {
    var wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ""];
    for (var i = 0; i < wanted.length; i++) {
      var code = String(wanted[i] || "").toLowerCase();
      if (code.indexOf("nn") === 0) { return "nn"; }
      if (code.indexOf("nb") === 0 || code === "no" || code.indexOf("no-") === 0) { return "nb"; }
      if (code.indexOf("en") === 0) { return "en"; }
    }
    return "nb";
  }

  // -- the page's own labels ------------------------------------------------------------------------
  function applyLabels() {
    document.documentElement.lang = lang;
    document.title = t("title");
    $("title").textContent = t("title");
    $("subtitle").textContent = t("subtitle");
    $("skip").textContent = t("skip_to_input");
    $("lang-label").textContent = t("language");
    $("menu").textContent = t("menu");
    $("privacy").textContent = t("privacy");
    $("delete").textContent = t("delete");
    $("input-label").textContent = t("input_label");
    $("input").placeholder = t("input_placeholder");
    $("send").textContent = t("send");
    $("log").setAttribute("aria-label", t("log_label"));
    $("emergency").textContent = t("emergency");
    $("emergency-link").textContent = t("emergency_number");
    var buttons = $("langs").querySelectorAll("button[data-lang]");
    for (var i = 0; i < buttons.length; i++) {
      var code = buttons[i].getAttribute("data-lang");
      buttons[i].textContent = t("language_name." + code);
      buttons[i].setAttribute("aria-pressed", code === lang ? "true" : "false");
    }
  }

  function setLang(code) {
    if (LANGS.indexOf(code) < 0) { return; }
    lang = code;
    if (labels) { applyLabels(); }
  }

  // -- rendering ------------------------------------------------------------------------------------
  function helpFor(line, help) {
    // A line of the reply that starts with one of its help numbers ("116 123 – Mental Helse …").
    for (var i = 0; i < help.length; i++) {
      var h = help[i];
      if (h.tel && h.number && line.indexOf(h.number) === 0 && /^[\s\u2013\u2014:,-]/.test(line.slice(h.number.length) || " ")) {
        return h;
      }
    }
    return null;
  }

  function telLink(h, text) {
    var link = el("a", "tel");
    link.href = "tel:" + h.tel;
    link.appendChild(el("span", "number", h.number));
    if (text) { link.appendChild(el("span", "name", " " + text)); }
    return link;
  }

  // Paragraphs are split by blank lines; single line breaks stay line breaks. Lines that name a help
  // number become tel: links; returns the help numbers that were linked this way.
  function appendText(parent, text, help) {
    var linked = [];
    String(text || "").split(/\n{2,}/).forEach(function (block) {
      if (!block.trim()) { return; }
      var p = el("p");
      var lines = block.split("\n");
      lines.forEach(function (line, i) {
        var h = help && help.length ? helpFor(line, help) : null;
        if (h) {
          p.classList.add("help-lines");
          p.appendChild(telLink(h, line.slice(h.number.length).replace(/^[\s\u2013\u2014:,-]+/, "")));
          linked.push(h);
          return;
        }
        if (i > 0 && !(help && help.length && helpFor(lines[i - 1], help))) {
          p.appendChild(document.createElement("br"));
        }
        p.appendChild(document.createTextNode(line));
      });
      parent.appendChild(p);
    });
    return linked;
  }

  function isWebLink(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url);
  }

  function citationTitle(c) {
    var section = c.section || "";
    if (section && c.document && section.indexOf(c.document) !== 0) { return c.document + " › " + section; }
    return section || c.document || "";
  }

  function renderCitations(parent, citations, inLang) {
    var box = el("div", "sources");
    box.appendChild(el("p", "sources-title", t("sources", null, inLang)));
    var list = el("ol");
    citations.forEach(function (c) {
      var item = el("li");
      item.value = c.n;
      var title = citationTitle(c);
      if (isWebLink(c.url)) {
        var link = el("a", null, title);
        link.href = c.url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        link.appendChild(el("span", "visually-hidden", " " + t("opens_new_tab", null, inLang)));
        item.appendChild(link);
      } else {
        item.appendChild(el("span", null, title));
      }
      var notes = [];
      if (c.refs && c.refs.length) { notes.push(c.refs.join(", ")); }
      if (c.updated) { notes.push(t("updated", { date: c.updated }, inLang)); }
      if (notes.length) { item.appendChild(el("span", "notes", " (" + notes.join("; ") + ")")); }
      list.appendChild(item);
    });
    box.appendChild(list);
    parent.appendChild(box);
  }

  function renderHelp(parent, help) {
    // Help numbers the text did not already list.
    var box = el("div", "help");
    box.appendChild(el("p", "help-title", t("help_numbers")));
    var list = el("ul");
    help.forEach(function (h) {
      var item = el("li");
      if (h.tel) {
        item.appendChild(telLink(h, h.name));
      } else {
        item.appendChild(el("span", null, (h.number + " " + h.name).trim()));
      }
      list.appendChild(item);
    });
    box.appendChild(list);
    parent.appendChild(box);
  }

  function renderButtons(parent, rows) {
    var box = el("div", "buttons");
    rows.forEach(function (row) {
      var line = el("div", "row");
      row.forEach(function (b) {
        var button = el("button", "choice", b.label);
        button.type = "button";
        button.addEventListener("click", function () {
          button.classList.add("chosen");
          send("button", { data: b.data }, null, true);
        });
        line.appendChild(button);
      });
      box.appendChild(line);
    });
    parent.appendChild(box);
  }

  function renderVote(parent, feedbackId, inLang) {
    var box = el("div", "vote");
    [true, false].forEach(function (up) {
      var button = el("button", "choice small", t(up ? "vote_up" : "vote_down", null, inLang));
      button.type = "button";
      button.addEventListener("click", function () {
        box.remove();
        send("vote", { id: feedbackId, up: up }, null, false);
      });
      box.appendChild(button);
    });
    parent.appendChild(box);
  }

  function retireOldChoices() {
    // Older menus stay readable but leave the tab order; the newest message holds the live choices.
    var old = $("log").querySelectorAll(".buttons button");
    for (var i = 0; i < old.length; i++) { old[i].disabled = true; }
  }

  function addBubble(who, className, inLang) {
    var item = el("div", "msg " + className);
    item.setAttribute("lang", inLang || lang);
    item.appendChild(el("p", "who visually-hidden", who + ":"));
    $("log").appendChild(item);
    return item;
  }

  function addUser(text) {
    var item = addBubble(t("you"), "user");
    appendText(item, text);
    item.scrollIntoView({ block: "end" });
  }

  function addReply(reply) {
    var kind = /^[a-z_]+$/.test(reply.kind || "") ? reply.kind : "info";
    // An English answer in a bokmål session is marked and labelled in English (screen readers, "Sources").
    var replyLang = labels && labels[reply.lang] ? reply.lang : lang;
    var item = addBubble(t("bot"), "bot kind-" + kind, replyLang);
    var help = Array.isArray(reply.help) ? reply.help : [];
    var linked = appendText(item, reply.text, help);
    var rest = help.filter(function (h) { return linked.indexOf(h) < 0; });
    if (rest.length) { renderHelp(item, rest); }
    if (reply.citations && reply.citations.length) { renderCitations(item, reply.citations, replyLang); }
    if (reply.buttons && reply.buttons.length) { renderButtons(item, reply.buttons); }
    if (reply.feedback_id) { renderVote(item, reply.feedback_id, replyLang); }
    return item;
  }

  function addError(text) {
    var item = addBubble(t("bot"), "bot kind-error");
    appendText(item, text);
    item.scrollIntoView({ block: "end" });
  }

  function setBusy(on) {
    busy = on;
    $("send").disabled = on;
    $("status").textContent = on ? t("thinking") : "";
  }

  // -- talking to the server ------------------------------------------------------------------------
  function api(action, body) {
    var payload = Object.assign({ lang: lang }, body || {});
    if (framed) { payload.framed = true; }
    var headers = { "Content-Type": "application/json" };
    if (session) { headers["X-Kap12-Session"] = session; }
    return fetch("api/" + action, {
      method: "POST", headers: headers, body: JSON.stringify(payload), credentials: "same-origin", cache: "no-store"
    }).then(function (response) {
      return response.json().then(function (data) {
        if (data && typeof data.session === "string") { session = data.session; }
        return { ok: response.ok, data: data || {} };
      });
    });
  }

  // fromButton: true = focus the first new choice, false = back to the input, null = leave focus alone.
  function send(action, body, userText, fromButton) {
    if (busy) { return Promise.resolve(); }
    setBusy(true);
    if (userText) { addUser(userText); }
    return api(action, body).then(function (result) {
      if (!result.ok || !Array.isArray(result.data.replies)) {
        addError(result.data.message || t("error_network"));
        return;
      }
      if (result.data.forgotten) { $("log").textContent = ""; }
      if (result.data.lang) { setLang(result.data.lang); }
      retireOldChoices();
      var first = null;
      result.data.replies.forEach(function (reply) {
        var item = addReply(reply);
        first = first || item;
      });
      if (first) { first.scrollIntoView({ block: "start" }); }
    }).catch(function () {
      addError(t("error_network"));
    }).then(function () {
      setBusy(false);
      var choices = $("log").querySelectorAll(".msg:last-child .buttons button:not([disabled])");
      if (fromButton && choices.length) { choices[0].focus(); } else if (fromButton === false) { $("input").focus(); }
    });
  }

  function submitInput() {
    var input = $("input");
    var text = input.value.trim();
    if (!text || busy) { return; }
    input.value = "";
    send("message", { text: text }, text, false);
  }

  function wire() {
    $("form").addEventListener("submit", function (event) {
      event.preventDefault();
      submitInput();
    });
    $("input").addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submitInput();
      }
    });
    $("menu").addEventListener("click", function () { send("command", { name: "meny", arg: "" }, null, true); });
    $("privacy").addEventListener("click", function () { send("command", { name: "personvern", arg: "" }, null, true); });
    $("delete").addEventListener("click", function () { send("delete", {}, null, true); });
    var buttons = $("langs").querySelectorAll("button[data-lang]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function (event) {
        var code = event.currentTarget.getAttribute("data-lang");
        setLang(code);
        send("language", { lang: code }, null, true);
      });
    }
  }

  function start() {
    wire();
    lang = preferredLanguage();
    fetch("api/ui", { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        labels = data.labels;
        applyLabels();
        return send("start", {}, null, null);
      })
      .catch(function () { $("offline").hidden = false; });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
