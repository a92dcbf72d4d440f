// What the pages share: the latest overview (with the catalog in the chosen language) and the
// lookups of tag and dimension names in it.

import { t } from "./i18n.js";

export const store = {
  overview: null, // the last answer of GET /overview
  catalog: null, // its catalog document: {catalog, version, dimensions: [...]}
};

export function dimensions() {
  return (store.catalog && store.catalog.dimensions) || [];
}

export function dimension(name) {
  return dimensions().find((d) => d.name === name) || null;
}

export function tagInfo(tag) {
  for (const d of dimensions()) {
    const found = (d.tags || []).find((entry) => entry.tag === tag);
    if (found) return { ...found, dimension: d.name, dimensionLabel: d.label };
  }
  return null;
}

export function tagLabel(tag) {
  const info = tagInfo(tag);
  return info ? info.label : tag;
}

export function dimensionLabel(name) {
  const found = dimension(name);
  return found ? found.label : name;
}

export function channelLabel(channel) {
  const key = `channel.${channel}`;
  const text = t(key);
  return text === key ? channel : text;
}
