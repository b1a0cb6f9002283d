// Keeps the console live: the server sends each panel, rendered and escaped by the same
// templates as the page, whenever it changes (server-sent events). Nothing here builds HTML
// from data; without JavaScript the page still works, only without live updates.
"use strict";
(function () {
  if (!window.EventSource) return;
  var source = new EventSource("/console/events");
  source.addEventListener("panel", function (event) {
    var message = JSON.parse(event.data);
    var panel = document.getElementById(message.panel);
    if (panel) panel.innerHTML = message.html;
    document.body.dataset.live = "1";
  });
  source.onerror = function () { document.body.dataset.live = "0"; };
})();
