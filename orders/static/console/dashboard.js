/* The console dashboard's charts, drawn by the vendored Chart.js from the figures the page
   carries in <script id="dashboard-data" type="application/json"> (amounts in fen). */
(function () {
  "use strict";
  var source = document.getElementById("dashboard-data");
  if (!source || typeof window.Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var Chart = window.Chart;
  var brand = "#0a7d4f";
  var channelColours = ["#07c160", "#2f6fde", "#e08a00", "#8e44ad", "#7f8c8d"];

  function yuan(fen) { return fen / 100; }
  function money(value) {
    return "¥" + Number(value).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function moneyTooltip(context) {
    var value = context.parsed.y !== undefined && context.parsed.y !== null ? context.parsed.y : context.parsed;
    return (context.dataset.label ? context.dataset.label + ": " : "") + money(value);
  }

  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#5b636e";
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  var hourly = document.getElementById("chart-hourly");
  if (hourly) {
    new Chart(hourly, {
      type: "bar",
      data: {
        labels: data.hours,
        datasets: [{ label: hourly.dataset.label, data: data.hourly.map(yuan), backgroundColor: brand }]
      },
      options: {
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: moneyTooltip } } },
        scales: {
          x: { ticks: { maxRotation: 0 } },
          y: { beginAtZero: true, ticks: { callback: money } }
        }
      }
    });
  }

  var channels = document.getElementById("chart-channels");
  if (channels) {
    new Chart(channels, {
      type: "doughnut",
      data: {
        labels: data.channels,
        datasets: [{ data: data.channel_net.map(yuan), backgroundColor: channelColours.slice(0, data.channels.length) }]
      },
      options: {
        plugins: {
          legend: { position: "bottom" },
          tooltip: { callbacks: { label: function (context) { return context.label + ": " + money(context.parsed); } } }
        }
      }
    });
  }

  var daily = document.getElementById("chart-daily");
  if (daily) {
    new Chart(daily, {
      data: {
        labels: data.days,
        datasets: [
          { type: "bar", label: daily.dataset.label, data: data.daily.map(yuan), backgroundColor: brand, yAxisID: "y", order: 2 },
          { type: "line", label: daily.dataset.ordersLabel, data: data.daily_orders, borderColor: "#e08a00", backgroundColor: "#e08a00", yAxisID: "orders", order: 1, tension: 0.2, pointRadius: 2 }
        ]
      },
      options: {
        interaction: { mode: "index", intersect: false },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (context) {
                return context.dataset.yAxisID === "y" ? moneyTooltip(context) : context.dataset.label + ": " + context.parsed.y;
              }
            }
          }
        },
        scales: {
          y: { beginAtZero: true, ticks: { callback: money } },
          orders: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, ticks: { precision: 0 } }
        }
      }
    });
  }
})();
