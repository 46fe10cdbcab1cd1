// A query, a mutation and a query too long for a URL, sent by @urql/core with its defaults
// (preferGetMethod: 'within-url-limit'): prints each result as a JSON line.
// Usage: node urql-get.mjs <graphql URL> <access token>
import { Client, fetchExchange, gql } from "@urql/core";

const [url, token] = process.argv.slice(2);
const client = new Client({
  url,
  exchanges: [fetchExchange],
  fetchOptions: { headers: { authorization: `Bearer ${token}` } },
});

const longName = "Long" + "x".repeat(2100);
const operations = [
  ["query", client.query(gql`query Me { me { email } }`, {})],
  ["mutation", client.mutation(gql`
    mutation Create($input: CreateOrganizationInput!) {
      createOrganization(input: $input) { organization { slug } userErrors { code } }
    }`, { input: { name: "Urql Org", slug: "urql-org" } })],
  ["long query", client.query(gql(`query ${longName} { me { email } }`), {})],
];
for (const [name, operation] of operations) {
  const result = await operation.toPromise();
  console.log(JSON.stringify({
    name, data: result.data ?? null, error: result.error ? result.error.message : null,
  }));
}
