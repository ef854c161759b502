// The challenge's QR code, drawn as SVG from its value with the vendored qrcode-generator.

import qrcode from '../vendor/qrcode-generator/qrcode.mjs';
import { stringToBytes } from '../vendor/qrcode-generator/qrcode_UTF8.mjs';

qrcode.stringToBytes = stringToBytes; // the value is text: encode it as UTF-8, not Latin-1

const SVG = 'http://www.w3.org/2000/svg';
const QUIET_ZONE = 4; // modules of white around the code, as ISO/IEC 18004 asks

/** An <svg> of `value` as a QR code (error correction M), with its accessible name `label`. */
export function qrSvg(value, label) {
  const code = qrcode(0, 'M');
  code.addData(value);
  code.make();
  const count = code.getModuleCount();
  const size = count + 2 * QUIET_ZONE;
  let path = '';
  for (let row = 0; row < count; row += 1) {
    for (let col = 0; col < count; col += 1) {
      if (code.isDark(row, col)) path += `M${col + QUIET_ZONE} ${row + QUIET_ZONE}h1v1h-1z`;
    }
  }
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${size} ${size}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.setAttribute('shape-rendering', 'crispEdges');
  const background = document.createElementNS(SVG, 'rect');
  background.setAttribute('width', String(size));
  background.setAttribute('height', String(size));
  background.setAttribute('fill', '#fff');
  const modules = document.createElementNS(SVG, 'path');
  modules.setAttribute('d', path);
  modules.setAttribute('fill', '#000');
  svg.append(background, modules);
  return svg;
}
