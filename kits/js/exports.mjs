// Fails a build whose module does not export what its WIT world needs:
// componentize-qjs builds it anyway, and then every tick traps.
//
//   node exports.mjs strategy.js grid-strategy      (or producer-strategy)
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

const [file, world] = process.argv.slice(2);
const wanted = { 'grid-strategy': 'grid', 'producer-strategy': 'producer' }[world];
if (!file || !wanted) {
  console.error('usage: node exports.mjs STRATEGY.js grid-strategy|producer-strategy');
  process.exit(2);
}
// The strategy imports Powerplug's `log`, which only the host provides.
const stub = 'export default { log() {} }';
register(
  'data:text/javascript,' +
    encodeURIComponent(`export async function resolve(specifier, context, next) {
      if (specifier.startsWith('powerplug:strategy/log@')) {
        return { shortCircuit: true, url: 'data:text/javascript,' + encodeURIComponent(${JSON.stringify(stub)}) };
      }
      return next(specifier, context);
    }`),
);
const module = await import(pathToFileURL(file).href);
if (typeof module[wanted]?.tick !== 'function') {
  const others = Object.keys(module).filter((name) => typeof module[name]?.tick === 'function');
  const hint = others.length
    ? ` It exports ${others.map((name) => `\`${name}\``).join(', ')}: is the world in build.sh the right one?`
    : '';
  console.error(`${file} exports no \`${wanted}\` object with a tick function, which the ${world} world needs.${hint}`);
  process.exit(1);
}
