// Renders /openapi.json as a readable list of endpoints (no external Swagger/ReDoc assets needed).
"use strict";

(async () => {
  const root = document.getElementById("endpoints");
  const make = (tag, text, cls) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  };
  const table = (head, rows) => {
    const wrap = make("div", undefined, "table");
    const t = make("table");
    const tr = make("tr");
    for (const h of head) tr.append(make("th", h));
    t.append(tr);
    for (const row of rows) {
      const r = make("tr");
      for (const cell of row) r.append(make("td", cell));
      t.append(r);
    }
    wrap.append(t);
    return wrap;
  };
  let spec;
  try {
    const res = await fetch("/openapi.json");
    spec = await res.json();
  } catch (err) {
    root.replaceChildren(make("p", `Cannot load /openapi.json: ${err.message}`, "error"));
    return;
  }
  const resolve = (schema) => {
    if (schema && schema.$ref) return resolve(spec.components.schemas[schema.$ref.split("/").pop()]);
    return schema || {};
  };
  const cards = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const card = make("section", undefined, "card");
      const title = make("h2");
      title.append(make("span", method.toUpperCase(), "method"), make("code", path));
      card.append(title);
      if (op.summary) card.append(make("p", op.summary));
      if (op.description && op.description !== op.summary) card.append(make("p", op.description, "muted"));
      const params = (op.parameters || []).map((p) => [p.name, p.in, resolve(p.schema).type || "", p.description || ""]);
      const body = op.requestBody && op.requestBody.content;
      if (body) {
        for (const [type, media] of Object.entries(body)) {
          const schema = resolve(media.schema);
          for (const [name, prop] of Object.entries(schema.properties || {})) {
            const kind = prop.format === "binary" ? "file" : prop.enum ? prop.enum.join(" | ") : prop.type || "";
            params.push([name, type, kind, prop.description || ""]);
          }
          if (!schema.properties) params.push(["(body)", type, schema.format || schema.type || "", ""]);
        }
      }
      if (params.length) {
        card.append(make("h3", "Parameters"), table(["name", "in", "type", "description"], params));
      }
      const responses = Object.entries(op.responses || {}).map(([code, r]) => [
        code,
        Object.keys(r.content || {}).join(", "),
        r.description || "",
      ]);
      card.append(make("h3", "Responses"), table(["status", "content", "description"], responses));
      cards.push(card);
    }
  }
  root.replaceChildren(...cards);
})();
