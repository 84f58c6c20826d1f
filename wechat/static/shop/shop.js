/* The H5 shop's few behaviours; every page works without them.
 *
 * - data-locate: on the store picker, ask the browser where the shopper is and reload the
 *   page with ?lat=&lng= (GCJ-02, the stores' datum); without an answer the page keeps its
 *   default point.
 * - data-refresh-seconds: reload the page that often (the member code).
 * - data-preview-on-change: changing this field asks the server for the new price (the form's
 *   data-preview button).
 * - data-submit-on-change: changing this field sends its form.
 * - forms: a second click on a submit button while the first is on its way does nothing.
 */
(function () {
  "use strict";

  // WGS-84 (what browsers report) to GCJ-02 (Chinese maps, WeChat, our stores): the published
  // offset formula; outside China the two datums are the same.
  function outOfChina(lat, lng) {
    return lng < 72.004 || lng > 137.8347 || lat < 0.8293 || lat > 55.8271;
  }
  function offsetLat(x, y) {
    var r = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    r += (20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2 / 3;
    r += (20 * Math.sin(y * Math.PI) + 40 * Math.sin(y / 3 * Math.PI)) * 2 / 3;
    r += (160 * Math.sin(y / 12 * Math.PI) + 320 * Math.sin(y * Math.PI / 30)) * 2 / 3;
    return r;
  }
  function offsetLng(x, y) {
    var r = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    r += (20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2 / 3;
    r += (20 * Math.sin(x * Math.PI) + 40 * Math.sin(x / 3 * Math.PI)) * 2 / 3;
    r += (150 * Math.sin(x / 12 * Math.PI) + 300 * Math.sin(x / 30 * Math.PI)) * 2 / 3;
    return r;
  }
  function wgs84ToGcj02(lat, lng) {
    if (outOfChina(lat, lng)) return [lat, lng];
    var a = 6378245.0, ee = 0.00669342162296594323;
    var dLat = offsetLat(lng - 105.0, lat - 35.0), dLng = offsetLng(lng - 105.0, lat - 35.0);
    var radLat = lat / 180.0 * Math.PI, magic = Math.sin(radLat);
    magic = 1 - ee * magic * magic;
    var sqrtMagic = Math.sqrt(magic);
    dLat = (dLat * 180.0) / ((a * (1 - ee)) / (magic * sqrtMagic) * Math.PI);
    dLng = (dLng * 180.0) / (a / sqrtMagic * Math.cos(radLat) * Math.PI);
    return [lat + dLat, lng + dLng];
  }

  function locate(element) {
    var status = element.querySelector("[data-locate-status]");
    var params = new URLSearchParams(window.location.search);
    if (params.has("lat") || !navigator.geolocation) return;
    if (status) status.textContent = element.getAttribute("data-locating");
    navigator.geolocation.getCurrentPosition(
      function (position) {
        var point = wgs84ToGcj02(position.coords.latitude, position.coords.longitude);
        params.set("lat", point[0].toFixed(6));
        params.set("lng", point[1].toFixed(6));
        window.location.replace(window.location.pathname + "?" + params.toString());
      },
      function () {
        if (status) status.textContent = element.getAttribute("data-located-not");
      },
      { enableHighAccuracy: false, timeout: 8000, maximumAge: 300000 }
    );
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-locate]").forEach(locate);

    var refresh = document.querySelector("[data-refresh-seconds]");
    if (refresh) {
      var seconds = parseInt(refresh.getAttribute("data-refresh-seconds"), 10);
      if (seconds > 0) window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
    }

    document.querySelectorAll("[data-preview-on-change]").forEach(function (field) {
      field.addEventListener("change", function () {
        var button = field.form.querySelector("[data-preview]");
        if (button) field.form.requestSubmit(button);
      });
    });

    document.querySelectorAll("[data-submit-on-change]").forEach(function (field) {
      field.addEventListener("change", function () { field.form.requestSubmit(); });
    });

    document.querySelectorAll("form").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (form.dataset.sent) { event.preventDefault(); return; }
        form.dataset.sent = "1";
      });
    });
  });

  // A page brought back by the browser's back button may be a snapshot of a sent form.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form").forEach(function (form) { delete form.dataset.sent; });
  });
})();
