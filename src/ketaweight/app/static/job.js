// Live progress of one background job: polls its JSON every second and updates the page.
(function () {
  var box = document.getElementById("job-progress");
  if (!box) { return; }
  var url = box.getAttribute("data-url");
  var bar = document.getElementById("job-bar"), stage = document.getElementById("job-stage"), status = document.getElementById("job-status");
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j) { return; }
        bar.value = j.progress; bar.textContent = Math.round(j.progress * 100) + "%";
        stage.textContent = j.stage; status.textContent = j.status;
        if (j.status === "done" || j.status === "failed") { window.location.reload(); } else { setTimeout(poll, 1000); }
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 1000);
})();
