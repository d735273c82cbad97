// The console's only script besides htmx: copy buttons, and confirmations that ask for a
// typed name. Everything else is HTML and htmx attributes, so pages work without it too.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // <input data-confirm-name="NAME"> keeps its form's submit button disabled until NAME is
  // typed; the server checks the name again (and without this script, only the server).
  function guard(input) {
    var submit = input.form && input.form.querySelector("[type=submit]");
    if (submit) submit.disabled = input.value !== input.getAttribute("data-confirm-name");
  }
  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("[data-confirm-name]")) guard(event.target);
  });
  document.addEventListener("htmx:load", function (event) {
    event.target.querySelectorAll("[data-confirm-name]").forEach(guard);
  });
})();
