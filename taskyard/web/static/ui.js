// taskyard's web UI: follows a running task's agent log (Server-Sent Events) on its page.
// Text goes into the page with textContent only: a log line is never read as HTML.
"use strict";

(function () {
  function lineItem(text) {
    var item = document.createElement("li");
    var kind = "";
    try {
      var data = JSON.parse(text);
      if (data && typeof data === "object" && !Array.isArray(data)) {
        kind = data.type || data.stream || "";
      }
    } catch (notJson) {
      kind = "";
    }
    if (kind) {
      var label = document.createElement("span");
      label.className = "kind";
      label.textContent = String(kind);
      item.appendChild(label);
    }
    var code = document.createElement("code");
    code.textContent = text;
    item.appendChild(code);
    return item;
  }

  function showStatus(status) {
    var holder = document.querySelector("[data-task-status]");
    var badge = holder && holder.querySelector(".status");
    if (!badge || !status) {
      return;
    }
    holder.setAttribute("data-task-status", status);
    badge.textContent = status;
    badge.className = "status s-" + status;
  }

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 60;
  }

  function followLog(list) {
    var state = document.querySelector("[data-log-state]");
    var say = function (text) {
      if (state) {
        state.textContent = text;
      }
    };
    var source = new EventSource(list.getAttribute("data-stream"));
    source.addEventListener("open", function () {
      say("Live: following the agent's log.");
    });
    source.addEventListener("log", function (event) {
      var stick = nearBottom();
      list.appendChild(lineItem(event.data));
      list.setAttribute("data-lines", String(list.children.length));
      if (stick) {
        list.lastElementChild.scrollIntoView({ block: "end" });
      }
    });
    source.addEventListener("status", function (event) {
      showStatus(JSON.parse(event.data).status);
    });
    source.addEventListener("end", function (event) {
      source.close();
      var ended = JSON.parse(event.data);
      showStatus(ended.status);
      say("The task ended (" + (ended.status || "gone") + "): showing its outcome.");
      window.setTimeout(function () {
        window.location.reload();
      }, 400);
    });
    source.addEventListener("error", function () {
      if (source.readyState !== EventSource.CLOSED) {
        say("Connection lost: reconnecting.");
      }
    });
    window.addEventListener("pagehide", function () {
      source.close();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var list = document.querySelector("ol.log[data-stream]");
    if (list && window.EventSource) {
      followLog(list);
    }
  });
})();
