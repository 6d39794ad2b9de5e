// Airlock console: keeps the approver's queue current without a reload.
// It polls /console/queue.json (the server renders each row, escaped) and
// adds new requests and drops decided ones, leaving the rows someone may
// be typing a comment into alone.
"use strict";
(function () {
  if (document.body.dataset.page !== "queue") return;
  var tbody = document.querySelector("#queue tbody");
  var empty = document.getElementById("empty");
  var more = document.getElementById("more");
  var next = document.getElementById("queue-next");
  var busy = false;
  function refresh() {
    if (busy) return;
    busy = true;
    // The page's own query (after, limit): a page after the first
    // polls that page.
    fetch("/console/queue.json" + window.location.search, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location = "/console/login"; throw new Error("signed out"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        var want = {};
        data.rows.forEach(function (row) { want[row.id] = row; });
        Array.prototype.slice.call(tbody.rows).forEach(function (tr) {
          if (!want[tr.dataset.id]) tr.remove();
          else delete want[tr.dataset.id];
        });
        data.rows.forEach(function (row) {
          if (!want[row.id]) return; // already shown
          var t = document.createElement("template");
          t.innerHTML = row.html.trim();
          tbody.appendChild(t.content.firstElementChild);
        });
        empty.hidden = tbody.rows.length > 0;
        if (data.next) next.setAttribute("href", "/console/queue?" + data.next);
        more.hidden = !data.next;
        document.body.dataset.polled = String(Date.now());
      })
      .catch(function () {})
      .finally(function () { busy = false; });
  }
  setInterval(refresh, 2000);
})();

// The review's filter takes a day or a window (since/until), not both, as
// `airlock grants` does: the page opens on today, so typing a window
// clears the day, and picking a day clears the window. Without script the
// server refuses both at once and says so beside the form.
(function () {
  if (document.body.dataset.page !== "review") return;
  var form = document.getElementById("filters");
  if (!form) return;
  var day = form.elements.day, since = form.elements.since, until = form.elements.until;
  function clearDay() { if (since.value || until.value) day.value = ""; }
  since.addEventListener("input", clearDay);
  until.addEventListener("input", clearDay);
  day.addEventListener("input", function () {
    if (day.value) { since.value = ""; until.value = ""; }
  });
})();
