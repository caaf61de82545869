def get_embeddings(self, chunks):
        embeddings = []
        for chunk in chunks:
            try:
          
                response = openai.Embedding.create(
                    input=chunk  
                    model="text-embedding-ada-002"
                )
                embeddings.append(response['data'][0]['embedding'])
            except Exception as e:
                print(f"Error: {e}")
        return embeddings
