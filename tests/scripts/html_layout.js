// Injected by test_report_html.sh into a copy of the HTML report (the
// report itself carries no script and its CSP forbids one): checks the
// layout as rendered and writes the verdict into the DOM, which headless
// Chromium's --dump-dom prints.
(function () {
  var W = document.documentElement.clientWidth, bad = [], texts = 0;
  function scrolls(el) {
    for (var p = el.parentElement; p; p = p.parentElement) {
      var o = getComputedStyle(p).overflowX;
      if (o === "auto" || o === "scroll") return true;
    }
    return false;
  }
  function name(el) {
    return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
      (el.className && typeof el.className === "string" ? "." + el.className : "");
  }
  // no element wider than the viewport outside a scroll container
  document.querySelectorAll("body *").forEach(function (el) {
    if (el.closest("svg") && el.tagName.toLowerCase() !== "svg") return;
    var r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) return;
    if ((r.right > W + 0.5 || r.left < -0.5) && !scrolls(el))
      bad.push("wider than the viewport: " + name(el) + " " + Math.round(r.left) + ".." + Math.round(r.right));
  });
  if (document.documentElement.scrollWidth > W)
    bad.push("the page scrolls sideways: " + document.documentElement.scrollWidth + " > " + W);
  // every chart's text inside its SVG; legend swatches in the colours of the marks
  document.querySelectorAll("svg").forEach(function (svg) {
    var s = svg.getBoundingClientRect(), fills = {};
    svg.querySelectorAll("text").forEach(function (t) {
      var b = t.getBoundingClientRect();
      texts++;
      if (b.left < s.left - 0.5 || b.right > s.right + 0.5 || b.top < s.top - 0.5 || b.bottom > s.bottom + 0.5)
        bad.push("label outside " + svg.id + ": '" + t.textContent + "' " + Math.round(b.left - s.left) + ".." +
          Math.round(b.right - s.left) + " of " + Math.round(s.width));
    });
    svg.querySelectorAll("rect:not(.swatch), circle").forEach(function (m) {
      fills[m.getAttribute("fill")] = true;
    });
    svg.querySelectorAll("polyline").forEach(function (m) {
      fills[m.getAttribute("stroke")] = true;
    });
    svg.querySelectorAll("rect.swatch").forEach(function (sw) {
      if (!fills[sw.getAttribute("fill")]) bad.push("legend swatch " + sw.getAttribute("fill") + " is no mark's colour in " + svg.id);
    });
    svg.querySelectorAll("text").forEach(function (t) {
      var f = getComputedStyle(t).fill;
      if (/^\s*\u25a0/.test(t.textContent)) bad.push("legend drawn as a character in " + svg.id + " (" + f + ")");
    });
  });
  var pre = document.createElement("pre");
  pre.id = "layout-check";
  pre.textContent = JSON.stringify({ width: W, svgs: document.querySelectorAll("svg").length, texts: texts, bad: bad });
  document.body.appendChild(pre);
})();
