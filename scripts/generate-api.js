/**
 * Generates src/api/schema.ts, the TypeScript types of the server API, from the one
 * contract jupyter_cvat_train/server/api-schema.json (OpenAPI 3.1): one type per entry
 * of components.schemas, named by its title.
 *
 *   node scripts/generate-api.js           write src/api/schema.ts
 *   node scripts/generate-api.js --check   exit 1 when the committed file is stale
 *
 * `generate()` is also used by the jest test src/__tests__/schema.spec.ts.
 */
const fs = require('fs');
const path = require('path');
const { compile } = require('json-schema-to-typescript');
const prettier = require('prettier');

const ROOT = path.resolve(__dirname, '..');
const SCHEMA = path.join(
  ROOT,
  'jupyter_cvat_train',
  'server',
  'api-schema.json'
);
const OUTPUT = path.join(ROOT, 'src', 'api', 'schema.ts');

const BANNER = `/**
 * The request, reply and websocket message shapes of {base_url}cvat-train/api/.
 *
 * GENERATED from jupyter_cvat_train/server/api-schema.json by scripts/generate-api.js:
 * do not edit; change the schema, then run \`jlpm generate:api\`.
 */`;

/**
 * The text of src/api/schema.ts for the contract at `schemaPath`.
 * @returns {Promise<string>} TypeScript source, formatted with the project's prettier config.
 */
async function generate(schemaPath = SCHEMA) {
  const doc = JSON.parse(fs.readFileSync(schemaPath, 'utf-8'));
  const names = Object.keys(doc.components.schemas);
  // A root that references every component, so that each is emitted under its title;
  // the root's own interface is dropped below.
  const root = {
    title: 'ApiContractRoot',
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(
      names.map(n => [n, { $ref: `#/components/schemas/${n}` }])
    ),
    components: doc.components
  };
  let ts = await compile(root, 'ApiContractRoot', {
    bannerComment: '',
    additionalProperties: false,
    unknownAny: true,
    strictIndexSignatures: true,
    format: false
  });
  ts = ts.replace(/export interface ApiContractRoot \{[\s\S]*?\n\}\n/, '');
  const options = (await prettier.resolveConfig(OUTPUT)) ?? {};
  return prettier.format(`${BANNER}\n\n${ts}`, {
    ...options,
    parser: 'typescript'
  });
}

async function main() {
  const text = await generate();
  if (process.argv.includes('--check')) {
    const current = fs.existsSync(OUTPUT)
      ? fs.readFileSync(OUTPUT, 'utf-8')
      : '';
    if (current !== text) {
      console.error(
        `${path.relative(ROOT, OUTPUT)} is stale: run \`jlpm generate:api\` and commit it.`
      );
      process.exit(1);
    }
    return;
  }
  fs.mkdirSync(path.dirname(OUTPUT), { recursive: true });
  fs.writeFileSync(OUTPUT, text);
}

module.exports = { generate, SCHEMA, OUTPUT };

if (require.main === module) {
  main().catch(error => {
    console.error(error);
    process.exit(1);
  });
}
