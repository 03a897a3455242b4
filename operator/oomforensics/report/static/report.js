(function () {
  "use strict";
  var select = document.getElementById("run-select");
  if (select) {
    select.addEventListener("change", function () {
      var wanted = select.value;
      document.querySelectorAll("section.run").forEach(function (section) {
        section.hidden = wanted !== "" && section.id !== wanted;
      });
    });
  }
  document.querySelectorAll(".flame").forEach(function (flame) {
    var frames = Array.prototype.slice.call(flame.querySelectorAll("[data-frame]"));
    var info = document.getElementById(flame.getAttribute("data-flame") + "-info");
    function num(el, name) { return Number(el.getAttribute("data-" + name)); }
    function zoom(target) {
      var start = num(target, "start"), width = num(target, "width"), depth = num(target, "depth");
      if (!(width > 0)) { return; }
      frames.forEach(function (f) {
        var s = num(f, "start"), w = num(f, "width"), d = num(f, "depth");
        var above = d < depth && s <= start && s + w >= start + width;
        var inside = d >= depth && s >= start && s + w <= start + width;
        f.hidden = !(above || inside);
        if (above) {
          f.style.left = "0%"; f.style.width = "100%";
        } else if (inside) {
          f.style.left = (100 * (s - start) / width).toFixed(4) + "%";
          f.style.width = (100 * w / width).toFixed(4) + "%";
        }
      });
    }
    flame.addEventListener("click", function (event) {
      var f = event.target.closest("[data-frame]");
      if (f) { zoom(f); }
    });
    flame.addEventListener("mouseover", function (event) {
      var f = event.target.closest("[data-frame]");
      if (f && info) { info.textContent = f.getAttribute("title"); }
    });
  });
})();
