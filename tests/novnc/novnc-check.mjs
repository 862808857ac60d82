// noVNC (the npm package @novnc/novnc, bundled for the browser with
// esbuild) in headless Chromium (Debian's, driven by playwright-core),
// connected over WebSocket to the display server's VNC port itself (no
// proxy). Reports what the page's canvas shows against the test guest's
// pattern, saves a screenshot, and keeps watching: when the server is
// killed the page reconnects, as noVNC's own app does (reconnect=true),
// and shows the picture again.
//
//   node novnc-check.mjs BUNDLE PORT WIDTH HEIGHT SCREENSHOT [TEXT]
// (run from the directory tests/novnc/setup.sh prepared). With TEXT, the
// page types it on noVNC's canvas after the first picture, as a user
// would (Chromium's key events; noVNC sends them as scan codes when the
// server offers QEMU's extended key event), and says "typed".
// Lines on stdout: "connected", "picture N E" (N pixels more than 32 off
// the pattern in a channel, E the mean error per channel: noVNC asks for
// Tight with JPEG, so its picture is close, not exact), "disconnected",
// "reconnected", then again "picture N E".
import { chromium } from 'playwright-core';
import fs from 'node:fs';

const [bundle, port, width, height, screenshot, text] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: Number(width) + 20, height: Number(height) + 20 } });
page.on('console', (message) => process.stderr.write(`page: ${message.text()}\n`));
await page.setContent('<html><body style="margin:0;background:#000"><div id="screen"></div></body></html>');
await page.addScriptTag({ content: fs.readFileSync(bundle, 'utf8') });
await page.evaluate(({ port }) => {
  window.events = [];
  const connect = () => {
    const rfb = new noVNC.default(document.getElementById('screen'), `ws://127.0.0.1:${port}`);
    rfb.scaleViewport = false;
    rfb.qualityLevel = 9;  // the best JPEG noVNC asks for
    rfb.addEventListener('connect', () => window.events.push('connected'));
    rfb.addEventListener('disconnect', () => {
      window.events.push('disconnected');
      setTimeout(connect, 500);  // noVNC's app: reconnect_delay
    });
    window.rfb = rfb;
  };
  connect();
}, { port });

// The test guest's pattern (tests/guest/display.c), compared in the page.
const differing = () => page.evaluate(({ width, height }) => {
  const canvas = document.querySelector('#screen canvas');
  if (!canvas || canvas.width !== width || canvas.height !== height) return -1;
  const pixels = canvas.getContext('2d').getImageData(0, 0, width, height).data;
  let wrong = 0, error = 0;
  for (let y = 0; y < height; ++y) {
    for (let x = 0; x < width; ++x) {
      const border = x === 0 || y === 0 || x === width - 1 || y === height - 1;
      const expected = [border ? 255 : x & 255, border ? 255 : y & 255, border ? 255 : (x + y) & 255];
      const at = 4 * (y * width + x);
      let far = false;
      for (let c = 0; c < 3; ++c) {
        const off = Math.abs(pixels[at + c] - expected[c]);
        error += off;
        if (off > 32) far = true;
      }
      if (far) ++wrong;
    }
  }
  return [wrong, error / (3 * width * height)];
}, { width: Number(width), height: Number(height) });

const waitFor = async (event, count) => {
  for (let i = 0; i < 600; ++i) {
    const events = await page.evaluate(() => window.events);
    if (events.filter((e) => e === event).length >= count) return true;
    await page.waitForTimeout(100);
  }
  return false;
};
// The picture once no pixel is far off (or after 10 s, whatever it shows).
const picture = async () => {
  let seen = -1;
  for (let i = 0; i < 100; ++i) {
    seen = await differing();
    if (seen !== -1 && seen[0] === 0) break;
    await page.waitForTimeout(100);
  }
  return seen === -1 ? 'none' : `${seen[0]} ${seen[1].toFixed(2)}`;
};

if (!(await waitFor('connected', 1))) { console.log('no connection'); process.exit(1); }
console.log('connected');
const shown = await picture();
await page.locator('#screen canvas').screenshot({ path: screenshot });
console.log(`picture ${shown}`);
if (text) {
  await page.locator('#screen canvas').click({ position: { x: 5, y: 5 } });  // focus, and a click
  await page.keyboard.type(text, { delay: 100 });
  console.log('typed');
}
// Now the test kills the server.
if (!(await waitFor('disconnected', 1))) {
  console.log('never disconnected');
} else {
  console.log('disconnected');
  if (!(await waitFor('connected', 2))) {
    console.log('no reconnection');
  } else {
    console.log('reconnected');
    console.log(`picture ${await picture()}`);
  }
}
await browser.close();
