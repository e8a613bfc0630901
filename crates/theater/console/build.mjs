// Builds the console into OUTDIR: `node build.mjs OUTDIR` (npm run build: `dist`).
//
// Writes exactly OUTDIR/index.html, OUTDIR/console.js, OUTDIR/console.css and
// OUTDIR/console.js.LEGAL.txt (the license comments esbuild keeps out of the bundle, then the
// license file of every npm package the bundle holds). Needs no network. Any error exits
// non-zero with a message.

import { copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'src');

function fail(message) {
  console.error(`build.mjs: ${message}`);
  process.exit(1);
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length !== 1 || args[0].startsWith('-')) {
    console.error('usage: node build.mjs OUTDIR');
    process.exit(2);
  }
  const out = resolve(args[0]);

  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch (e) {
    fail(`cannot load esbuild (${e.message}); run \`npm ci\` in ${here} first`);
  }

  await mkdir(out, { recursive: true });
  const legal = join(out, 'console.js.LEGAL.txt');
  // esbuild writes the legal file only when it finds license comments: drop an old one.
  await rm(legal, { force: true });

  let result;
  try {
    result = await esbuild.build({
      absWorkingDir: here,
      entryPoints: [join(src, 'main.js')],
      outfile: join(out, 'console.js'),
      bundle: true,
      minify: true,
      format: 'esm',
      target: 'es2020',
      platform: 'browser',
      sourcemap: false,
      legalComments: 'external',
      charset: 'utf8',
      metafile: true,
      logLevel: 'warning',
      define: { 'process.env.NODE_ENV': '"production"' },
    });
  } catch (e) {
    // esbuild has already printed the errors themselves.
    fail(`esbuild failed: ${e.errors ? `${e.errors.length} error(s)` : e.message}`);
  }
  if (result.errors.length) fail(`esbuild reported ${result.errors.length} error(s)`);

  // The license of every package in the bundle, after esbuild's own extract.
  const packages = new Set();
  for (const input of Object.keys(result.metafile.inputs)) {
    const m = input.match(/(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//);
    if (m) packages.add(m[1]);
  }
  let text = '';
  try {
    text = await readFile(legal, 'utf8');
  } catch {
    // none found by esbuild
  }
  const parts = text.trim() ? [text.trim()] : [];
  for (const name of [...packages].sort()) {
    const dir = join(here, 'node_modules', name);
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
    let license = null;
    for (const file of ['LICENSE', 'LICENSE.md', 'LICENSE.txt', 'license']) {
      try {
        license = await readFile(join(dir, file), 'utf8');
        break;
      } catch {
        // try the next name
      }
    }
    if (license === null) fail(`no license file in node_modules/${name}`);
    parts.push(`${name} ${pkg.version} (${pkg.license})\n\n${license.trim()}`);
  }
  await writeFile(legal, parts.join('\n\n' + '-'.repeat(72) + '\n\n') + '\n');

  for (const file of ['index.html', 'console.css']) {
    await copyFile(join(src, file), join(out, file));
  }

  const size = (await stat(join(out, 'console.js'))).size;
  console.log(`build.mjs: wrote ${out}/{index.html,console.js,console.css} (console.js: ${size} bytes)`);
}

main().catch((e) => fail(e && e.message ? e.message : String(e)));
