// A key's usage (GET /v1/keys/{id}/usage) as a chart and in words: one
// stacked bar an hour (ok, refused, rate-limited), a summary line, and a
// table of the hours with requests, the text alternative of the picture.
// The chart is SVG built by DOM calls with attributes and classes only:
// the page's CSP (style-src 'self') refuses inline style attributes, and
// the colours come from the stylesheet, so dark mode needs no code.

import { $, el, plural } from './ui.js';

const svgNS = 'http://www.w3.org/2000/svg';

// The outcomes, bottom to top of a bar: the field of the API, the class
// that colours it, and its name on the page.
const outcomes = [
  ['ok', 'ok', 'ok'],
  ['refused', 'refused', 'refused'],
  ['rate_limited', 'limited', 'rate-limited'],
];

// The chart's own units: each hour is slot wide, the busiest one height
// tall. preserveAspectRatio="none" stretches them to the box the
// stylesheet gives the chart, whatever the screen's width.
const slot = 10;
const gap = 1;
const height = 100;
// A segment that is not zero is at least this tall, so that 1 refused
// among 1000 admitted stays visible.
const smallest = 3;

/** svg builds an SVG element with attributes (never a style). */
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(svgNS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    node.setAttribute(name, String(value));
  }
  node.append(...children);
  return node;
}

/** span names a period of hours: "24 h", "12 h", "7 days", "3.5 days". */
export function span(hours) {
  return hours > 24 && hours % 12 === 0 ? plural(hours / 24, 'day') : `${hours} h`;
}

function total(counts) {
  return counts.ok + counts.refused + counts.rate_limited;
}

// hourFormat shows an hour's start in the viewer's time zone.
const hourFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

function countsText(counts) {
  return outcomes.map(([field, , name]) => `${counts[field]} ${name}`).join(', ');
}

/**
 * summary is the usage in one line: "312 requests in the last 24 h: 300
 * ok, 4 refused, 8 rate-limited. Busiest hour: 42 requests." or "No
 * requests in the last 24 h."
 */
export function summary(usage, hours) {
  const all = total(usage.totals);
  if (all === 0) {
    return `No requests in the last ${span(hours)}.`;
  }
  const busiest = Math.max(...usage.hours.map(total));
  return `${plural(all, 'request')} in the last ${span(hours)}: ${countsText(usage.totals)}. Busiest hour: ${plural(busiest, 'request')}.`;
}

// bar is one hour: its segments stacked from the bottom, and a title (the
// tooltip) with its counts.
function bar(hour, index, busiest) {
  const x = index * slot + gap;
  let top = height;
  const group = svg('g', { class: 'hour', 'data-hour': hour.hour, 'data-total': total(hour) },
    svg('title', {}, `${hourFormat.format(new Date(hour.hour))}: ${countsText(hour)}`));
  for (const [field, cls] of outcomes) {
    if (hour[field] === 0) {
      continue;
    }
    const size = Math.max(smallest, (hour[field] / busiest) * height);
    top -= size;
    group.append(svg('rect', { class: `segment ${cls}`, x, y: top, width: slot - 2 * gap, height: size }));
  }
  return group;
}

// chart is the picture: a baseline, lines at the busiest hour's height and
// at half of it, and a bar an hour. Screen readers get the summary (aria-labelledby) and
// the table instead of the shapes.
function chart(usage) {
  const width = usage.hours.length * slot;
  const busiest = Math.max(1, ...usage.hours.map(total));
  return svg('svg', {
    class: 'usage-chart', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none',
    role: 'img', 'aria-labelledby': 'key-usage-summary', focusable: 'false',
  },
  svg('line', { class: 'grid', x1: 0, x2: width, y1: 0.5, y2: 0.5, 'vector-effect': 'non-scaling-stroke' }),
  svg('line', { class: 'grid', x1: 0, x2: width, y1: height / 2, y2: height / 2, 'vector-effect': 'non-scaling-stroke' }),
  svg('line', { class: 'axis', x1: 0, x2: width, y1: height, y2: height, 'vector-effect': 'non-scaling-stroke' }),
  ...usage.hours.map((hour, i) => bar(hour, i, busiest)));
}

// countFormat writes a count of the scale: a whole number, or half of an
// odd one (the middle line of a chart whose busiest hour had 7 is 3.5).
const countFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

// scaleLabels are the counts beside the chart, top to bottom: the busiest
// hour's (the top line, where the bars are scaled to), half of it (the
// middle line) and 0 (the baseline).
function scaleLabels(usage) {
  const busiest = Math.max(...usage.hours.map(total));
  return [busiest, busiest / 2, 0].map((count) => el('span', { dataset: { count: String(count) } }, countFormat.format(count)));
}

// axisLabels are the times under the chart: its start, middle and end.
function axisLabels(hours) {
  const half = hours / 2;
  return [`${span(hours)} ago`, `${span(half)} ago`, 'now'].map((label) => el('span', {}, label));
}

// table lists the hours with requests, newest first.
function tableRows(usage) {
  return usage.hours.filter((hour) => total(hour) > 0).reverse().map((hour) => el('tr', { dataset: { hour: hour.hour } },
    el('th', { scope: 'row' }, el('time', { dateTime: hour.hour }, hourFormat.format(new Date(hour.hour)))),
    ...outcomes.map(([field]) => el('td', { class: 'num' }, String(hour[field])))));
}

/**
 * showUsage fills the key page's usage section with usage, read over the
 * last hours: the summary always, the chart and its table when there was
 * a request.
 */
export function showUsage(usage, hours) {
  $('key-usage-summary').textContent = summary(usage, hours);
  const used = total(usage.totals) > 0;
  $('key-usage-figure').hidden = !used;
  $('key-usage-details').hidden = !used;
  $('key-usage-chart').replaceChildren(used ? chart(usage) : '');
  $('key-usage-scale').replaceChildren(...(used ? scaleLabels(usage) : []));
  $('key-usage-axis').replaceChildren(...axisLabels(hours));
  const rows = used ? tableRows(usage) : [];
  $('key-usage-table').tBodies[0].replaceChildren(...rows);
  $('key-usage-count').textContent = plural(rows.length, 'hour');
}
