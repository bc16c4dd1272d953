// Language and theme switchers. Both are plain forms that work without script;
// this applies a choice as soon as it is made: the language form is submitted
// (the page must be rendered again in it), the theme is applied on <html> at
// once and saved in the background.
(function () {
  "use strict";
  for (const form of document.querySelectorAll("form[data-autosubmit]")) {
    const select = form.querySelector("select");
    if (select) select.addEventListener("change", () => form.submit());
  }

  const themeForm = document.getElementById("theme-form");
  if (!themeForm) return;
  const select = themeForm.querySelector("select[name=theme]");
  select.addEventListener("change", async () => {
    document.documentElement.dataset.theme = select.value;
    document.dispatchEvent(new CustomEvent("livedash:theme", { detail: select.value }));
    try {
      const response = await fetch(themeForm.action, {
        method: "POST",
        body: new FormData(themeForm),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
    } catch (err) {
      const ld = window.livedash;
      if (ld && ld.toast) {
        ld.toast(gettext("Theme not saved"), gettext("It applies to this page only; try again later."), "warning");
      }
    }
  });
})();
