# The `events` table of the mixed data set (DATA=mixed), shared by the
# benchmarks: identifiers and documents as applications store them (random
# uuids, hex digests and tokens, jsonb with nested ids). Little of it
# compresses. Usage: events_sql ROWS   (prints the SQL)
events_sql() {
  cat <<SQL
CREATE TABLE events (id uuid PRIMARY KEY, account uuid NOT NULL, digest text NOT NULL,
                     token text NOT NULL, at timestamptz NOT NULL, doc jsonb NOT NULL);
INSERT INTO events
SELECT gen_random_uuid(), gen_random_uuid(), md5(g::text || random()::text),
       encode(sha256((g::text || random()::text)::bytea), 'hex'),
       now() - g * interval '1 second',
       jsonb_build_object('order', gen_random_uuid(), 'amount', round((random() * 10000)::numeric, 2),
                          'items', jsonb_build_array(md5(random()::text), floor(random() * 1000)::int),
                          'ok', g % 3 = 0)
FROM generate_series(1, $1) g;
CREATE INDEX events_account ON events (account);
SQL
}
