// Live updates: server-sent events from /events. "pump" carries the board's own events (an alarm is shown
// in the banner the moment it arrives); "panels" carries the dashboard's panels rendered by the server.
(function () {
  var live = document.getElementById("live");
  var panels = document.getElementById("panels");
  var banner = document.getElementById("banner");
  window.itpumpLatencies = [];
  var es = new EventSource("/events");
  es.onopen = function () { live.textContent = "live"; live.className = "live on"; };
  es.onerror = function () { live.textContent = "reconnecting"; live.className = "live off"; };
  es.addEventListener("pump", function (e) {
    var ev = JSON.parse(e.data);
    if (ev.t_host_ms) { window.itpumpLatencies.push(Date.now() - ev.t_host_ms); }
    if (ev.event === "alarm" && ev.kind === "raise") {
      banner.textContent = "ALARM " + ev.code + " (" + ev.priority + ")";
      banner.setAttribute("data-code", ev.code);
    } else if (ev.event === "alarm" && (ev.kind === "ack" || ev.kind === "clear") && banner.getAttribute("data-code") === ev.code) {
      banner.textContent = ""; banner.removeAttribute("data-code");
    }
  });
  es.addEventListener("panels", function (e) {
    if (panels) { panels.innerHTML = JSON.parse(e.data).panels; }
  });
})();
