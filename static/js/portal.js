/* Developer portal: small progressive enhancements. Everything works without this file. */
(function () {
  "use strict";

  document.documentElement.classList.remove("no-js");
  document.documentElement.classList.add("js");

  function ready(fn) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", fn);
    } else {
      fn();
    }
  }

  // Mobile navigation toggle.
  function initNavToggle() {
    var toggle = document.querySelector(".nav-toggle");
    var nav = document.getElementById("site-nav");
    if (!toggle || !nav) return;
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") === "true";
      toggle.setAttribute("aria-expanded", String(!open));
      nav.classList.toggle("is-open", !open);
    });
  }

  // Close an open <details> menu on Escape or on a click elsewhere.
  function initMenus() {
    var menus = Array.prototype.slice.call(document.querySelectorAll("details.menu"));
    if (!menus.length) return;
    document.addEventListener("click", function (event) {
      menus.forEach(function (menu) {
        if (menu.open && !menu.contains(event.target)) menu.open = false;
      });
    });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") return;
      menus.forEach(function (menu) {
        if (menu.open) {
          menu.open = false;
          menu.querySelector("summary").focus();
        }
      });
    });
  }

  // Copy to clipboard: <button data-copy="#element-id">.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try {
        document.execCommand("copy") ? resolve() : reject(new Error("copy failed"));
      } catch (err) {
        reject(err);
      } finally {
        document.body.removeChild(area);
      }
    });
  }

  function initCopyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      var label = button.innerHTML;
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
        if (!source) return;
        copyText(source.textContent.trim()).then(
          function () {
            button.textContent = "Copied";
            button.classList.add("is-copied");
            setTimeout(function () {
              button.innerHTML = label;
              button.classList.remove("is-copied");
            }, 2000);
          },
          function () {
            // Fall back to selecting the text so the user can copy it by hand.
            var range = document.createRange();
            range.selectNodeContents(source);
            var selection = window.getSelection();
            selection.removeAllRanges();
            selection.addRange(range);
            button.textContent = "Press Ctrl+C";
          }
        );
      });
    });
  }

  // Suggest a slug from another field until the user edits the slug: <input data-slug-from="id_name">.
  function slugify(value) {
    return value
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9\s-]/g, "")
      .trim()
      .replace(/[\s-]+/g, "-")
      .slice(0, 60)
      .replace(/-+$/, "");
  }

  function initSlugSuggestion() {
    document.querySelectorAll("[data-slug-from]").forEach(function (slug) {
      var source = document.getElementById(slug.getAttribute("data-slug-from"));
      if (!source) return;
      var touched = slug.value !== "" && slug.value !== slugify(source.value);
      slug.addEventListener("input", function () {
        touched = slug.value !== "";
      });
      source.addEventListener("input", function () {
        if (!touched) slug.value = slugify(source.value);
      });
    });
  }

  // Move focus to a one-time notice (the client secret box) so it is announced and seen.
  function initAutofocus() {
    var target = document.querySelector("[data-autofocus]");
    if (target) target.focus();
  }

  ready(function () {
    initNavToggle();
    initMenus();
    initCopyButtons();
    initSlugSuggestion();
    initAutofocus();
  });
})();
