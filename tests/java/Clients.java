// Fetches one URL with java.net.http.HttpClient and one with
// HttpURLConnection, printing "STATUS BODY" for each. Run as a single-file
// source program: java Clients.java URL1 URL2
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;

public class Clients {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        HttpResponse<String> r = client.send(HttpRequest.newBuilder(URI.create(args[0])).build(), HttpResponse.BodyHandlers.ofString());
        System.out.println("HttpClient " + r.statusCode() + " " + r.body());

        HttpURLConnection c = (HttpURLConnection) new URL(args[1]).openConnection();
        try (InputStream in = c.getInputStream()) {
            System.out.println("HttpURLConnection " + c.getResponseCode() + " " + new String(in.readAllBytes(), StandardCharsets.UTF_8));
        }
    }
}
